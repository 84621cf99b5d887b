package mtmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
)

// ImageInfo is what an encoded image's header says, and what decoding it
// costs in memory.
type ImageInfo struct {
	Format        string // "png", "jpeg", "gif", "webp", "bmp", "tiff"
	Width, Height int
	// DecodeBytes bounds the memory decoding the image holds at once: the
	// pixel buffers Go's decoder allocates for this header (e.g. 4 bytes a
	// pixel for an 8-bit RGB PNG, 8 for a 16-bit one, twice that when
	// interlaced; the planes and, when progressive, the 256-byte coefficient
	// blocks of a JPEG) plus the conversion to RGB (the reduced image when
	// Limits.ReducePixels applies, else a full-size copy).
	DecodeBytes int64
	// KeptBytes is the size of the decoded image kept afterwards: 3 bytes a
	// pixel, after the reduction Limits.ReducePixels asks for.
	KeptBytes int64
}

// Pixels returns Width × Height.
func (i ImageInfo) Pixels() int64 { return int64(i.Width) * int64(i.Height) }

// ImageMemoryError is an image, or a request's images, needing more memory
// than a limit allows. It matches ErrImageTooLarge with errors.Is.
type ImageMemoryError struct {
	// Scope names the limit: "request" (a request's images together) or
	// "budget" (one image needing more than the whole MemoryBudget).
	Scope string
	// Images is the number of images counted.
	Images int
	// Largest is the image whose decoding costs most.
	Largest ImageInfo
	// Bytes is what the images need at once; Limit the bound it exceeds.
	Bytes, Limit int64
}

func (e *ImageMemoryError) Error() string {
	l := e.Largest
	what := fmt.Sprintf("%s image %d×%d (%d pixels) needs %d bytes to decode", l.Format, l.Width, l.Height, l.Pixels(), l.DecodeBytes)
	if e.Images > 1 {
		what = fmt.Sprintf("%d images need %d bytes of decoded pixels at once (the largest, a %s image %d×%d (%d pixels), %d bytes to decode; the others %d bytes once reduced)",
			e.Images, e.Bytes, l.Format, l.Width, l.Height, l.Pixels(), l.DecodeBytes, e.Bytes-l.DecodeBytes)
	}
	return fmt.Sprintf("%s, over the %s limit of %d bytes: %v", what, e.Scope, e.Limit, ErrImageTooLarge)
}

// Is reports whether target is ErrImageTooLarge.
func (e *ImageMemoryError) Is(target error) bool { return target == ErrImageTooLarge }

// ProbeImage reads an encoded image's header and returns its size, format
// and the memory decoding it takes, without decoding pixels. It applies
// limits as DecodeImageBytes does (bytes, pixels, ReducePixels).
func ProbeImage(data []byte, limits Limits) (ImageInfo, error) {
	limits = limits.withDefaults()
	if int64(len(data)) > limits.MaxBytes {
		return ImageInfo{}, fmt.Errorf("image data of %d bytes, limit %d: %w", len(data), limits.MaxBytes, ErrImageTooLarge)
	}
	if isAudio(data) {
		return ImageInfo{}, ErrAudioUnsupported
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return ImageInfo{}, fmt.Errorf("%w (want PNG, JPEG, GIF, WebP, BMP or TIFF)", ErrUnsupportedFormat)
		}
		return ImageInfo{}, fmt.Errorf("%w: header: %v", ErrInvalidImage, err)
	}
	if err := checkSize(cfg.Width, cfg.Height, limits); err != nil {
		return ImageInfo{}, fmt.Errorf("%s image: %w", format, err)
	}
	info := ImageInfo{Format: format, Width: cfg.Width, Height: cfg.Height}
	px := info.Pixels()
	kept := px
	if tw, th, ok := reducedSize(cfg.Width, cfg.Height, limits.ReducePixels); ok {
		kept = int64(tw) * int64(th)
		info.DecodeBytes = 3 * kept // the reduced RGB, built row by row
	} else {
		info.DecodeBytes = 7 * px // an NRGBA copy (formats other than Gray, RGBA, NRGBA) and the RGB
	}
	info.KeptBytes = 3 * kept
	info.DecodeBytes += decoderBytes(data, format, cfg)
	return info, nil
}

// decoderBytes is an upper bound of the bytes Go's decoder for format
// allocates for an image with this header (see image/png's readImagePass,
// image/jpeg's makeImg and progressive coefficients, x/image's decoders).
func decoderBytes(data []byte, format string, cfg image.Config) int64 {
	px := int64(cfg.Width) * int64(cfg.Height)
	switch format {
	case "png":
		return pngBytes(data, px)
	case "jpeg":
		if n, ok := jpegBytes(data); ok {
			return n
		}
		return 15 * px // progressive 4:4:4 with an RGB copy: the most
	case "gif":
		return px // one paletted frame
	case "webp":
		switch cfg.ColorModel {
		case color.YCbCrModel: // lossy: 4:2:0 planes
			return 2 * px
		case color.NYCbCrAModel: // lossy with an alpha plane decoded as lossless NRGBA
			return 11 * px
		}
		return 8 * px // lossless: NRGBA and a transform's buffer
	case "tiff":
		// The image and one decompressed strip or tile, which can be all
		// of it.
		return 2 * px * bytesPerPixel(cfg.ColorModel)
	}
	return px * bytesPerPixel(cfg.ColorModel) // bmp
}

func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.GrayModel:
		return 1
	case color.Gray16Model:
		return 2
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4
}

// pngBytes reads the IHDR: bit depth, colour type and interlacing. A
// transparency chunk can turn gray into NRGBA, so gray counts as 4 bytes
// (8 for 16-bit); interlaced images decode each pass into its own image
// before merging (about twice the pixels).
func pngBytes(data []byte, px int64) int64 {
	if len(data) < 29 {
		return 8 * px * 2
	}
	depth, ctype, interlace := data[24], data[25], data[28]
	per := int64(4)
	switch {
	case depth == 16:
		per = 8
	case ctype == 3: // paletted
		per = 1
	}
	if interlace != 0 {
		per *= 2
	}
	return per * px
}

// jpegBytes reads the frame header (SOF): components, their sampling
// factors and whether the image is progressive; ok is false when it finds
// none.
func jpegBytes(data []byte) (int64, bool) {
	jfif, adobeRGB := false, false
	for i := 2; i+4 <= len(data); {
		if data[i] != 0xff {
			return 0, false
		}
		marker := data[i+1]
		if marker == 0xff { // fill byte
			i++
			continue
		}
		if marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8) { // no length
			i += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2:]))
		if n < 2 {
			return 0, false
		}
		seg := data[i+4 : min(len(data), i+2+n)]
		switch {
		case marker == 0xe0 && bytes.HasPrefix(seg, []byte("JFIF")):
			jfif = true
		case marker == 0xee && len(seg) >= 12 && bytes.HasPrefix(seg, []byte("Adobe")):
			adobeRGB = seg[11] == 0 // transform "unknown": RGB
		case marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc:
			if len(seg) < 6 {
				return 0, false
			}
			h, w, nc := int64(binary.BigEndian.Uint16(seg[1:])), int64(binary.BigEndian.Uint16(seg[3:])), int(seg[5])
			if nc < 1 || nc > 4 || len(seg) < 6+3*nc {
				return 0, false
			}
			var hs, vs [4]int64
			hmax, vmax := int64(1), int64(1)
			for c := range nc {
				s := seg[6+3*c+1]
				hs[c], vs[c] = max(1, int64(s>>4)), max(1, int64(s&15))
				hmax, vmax = max(hmax, hs[c]), max(vmax, vs[c])
			}
			if nc == 1 { // gray decodes with 8×8 blocks whatever its factors
				hs[0], vs[0], hmax, vmax = 1, 1, 1, 1
			}
			mxx, myy := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
			var total int64
			for c := range nc {
				blocks := mxx * myy * hs[c] * vs[c]
				total += 64 * blocks // the component's plane
				if marker == 0xc2 || marker == 0xc6 || marker == 0xca {
					total += 256 * blocks // progressive: a [64]int32 per block
				}
			}
			rgb := nc == 3 && !jfif && (adobeRGB || string([]byte{seg[6], seg[9], seg[12]}) == "RGB")
			if nc == 4 || rgb { // CMYK, or RGB converted to RGBA (image/jpeg's isRGB)
				total += 4 * (8 * hmax * mxx) * (8 * vmax * myy)
			}
			return total, true
		case marker == 0xda || marker == 0xd9: // scan or end before a frame
			return 0, false
		}
		i += 2 + n
	}
	return 0, false
}

// decodeReduced decodes data (whose header is info) and converts it to an
// Image, reduced to limits.ReducePixels. The full-size image is garbage
// when it returns.
func decodeReduced(data []byte, info ImageInfo, limits Limits) (*Image, error) {
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidImage, info.Format, err)
	}
	b := img.Bounds()
	if tw, th, ok := reducedSize(b.Dx(), b.Dy(), limits.ReducePixels); ok {
		return newImage(tw, th, reduce(img, tw, th)), nil
	}
	return imageFromGo(img, limits)
}

// DecodeImageContext is DecodeImageBytes that decodes within budget
// (nil: no budget): it reads the header (ProbeImage), takes the image's
// DecodeBytes from the budget — waiting while other decodes hold it, until
// ctx is done — decodes, reduces the image to limits.ReducePixels and gives
// the bytes back once the full-size buffers are freed.
//
// Waiting fails with ErrBudgetBusy when ctx's deadline passes (a server
// answers 429), ErrCancelled when ctx is cancelled; an image needing more
// than the whole budget fails at once with an *ImageMemoryError.
func DecodeImageContext(ctx context.Context, data []byte, limits Limits, budget *MemoryBudget) (*Image, error) {
	limits = limits.withDefaults()
	info, err := ProbeImage(data, limits)
	if err != nil {
		return nil, err
	}
	return DecodeProbed(ctx, data, info, limits, budget)
}

// DecodeProbed is DecodeImageContext for an image whose header ProbeImage
// has read with the same limits.
func DecodeProbed(ctx context.Context, data []byte, info ImageInfo, limits Limits, budget *MemoryBudget) (*Image, error) {
	limits = limits.withDefaults()
	if err := budget.Acquire(ctx, info); err != nil {
		return nil, err
	}
	defer budget.Release(info.DecodeBytes)
	return decodeReduced(data, info, limits)
}
