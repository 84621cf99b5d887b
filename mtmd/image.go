package mtmd

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif"  // GIF decoder
	_ "image/jpeg" // JPEG decoder
	_ "image/png"  // PNG decoder
	"io"
	"os"

	_ "golang.org/x/image/bmp"  // BMP decoder
	_ "golang.org/x/image/tiff" // TIFF decoder
	_ "golang.org/x/image/webp" // WebP decoder
)

// Image is a decoded RGB image, ready for a projector. It is immutable and
// safe to share.
type Image struct {
	width, height int
	rgb           []byte // width*height*3 bytes, row-major
	id            string // content hash
}

// Limits bound the images DecodeImage accepts. Zero fields take defaults.
type Limits struct {
	// MaxPixels is the most pixels (width × height) an image may have;
	// default DefaultMaxPixels. Checked from the header before decoding.
	MaxPixels int
	// MaxBytes is the most encoded bytes read; default DefaultMaxBytes.
	MaxBytes int64
	// ReducePixels, if > 0, scales an image with more pixels down to at
	// most that many as it is decoded (aspect ratio kept, each pixel the
	// average of its box of source pixels): the full-size picture is never
	// converted or kept, only read row by row. A projector's ImagePixels
	// is what it uses of an image; package pipeline reduces to it.
	ReducePixels int
}

// Defaults of Limits.
const (
	DefaultMaxPixels = 50_000_000 // about 7071 × 7071
	DefaultMaxBytes  = 256 << 20  // 256 MiB of encoded image
)

func (l Limits) withDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// DecodeImage decodes a PNG, JPEG, GIF (first frame), WebP, BMP or TIFF
// image from r. The header is read first: an image whose size exceeds
// limits is rejected with ErrImageTooLarge before its pixels are decoded.
func DecodeImage(r io.Reader, limits Limits) (*Image, error) {
	limits = limits.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, limits.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading image: %w", err)
	}
	if int64(len(data)) > limits.MaxBytes {
		return nil, fmt.Errorf("image data over %d bytes: %w", limits.MaxBytes, ErrImageTooLarge)
	}
	return DecodeImageBytes(data, limits)
}

// DecodeImageBytes is DecodeImage for bytes in memory.
func DecodeImageBytes(data []byte, limits Limits) (*Image, error) {
	limits = limits.withDefaults()
	info, err := ProbeImage(data, limits)
	if err != nil {
		return nil, err
	}
	return decodeReduced(data, info, limits) // the caller's limits, not the defaults again
}

// LoadImage reads and decodes the image file at path (see DecodeImage).
func LoadImage(path string, limits Limits) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := DecodeImage(f, limits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func checkSize(w, h int, limits Limits) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%d×%d pixels: %w", w, h, ErrInvalidImage)
	}
	if w > 1<<16 || h > 1<<16 || w*h > limits.MaxPixels {
		return fmt.Errorf("%d×%d pixels, limit %d pixels: %w", w, h, limits.MaxPixels, ErrImageTooLarge)
	}
	return nil
}

// ImageFromGo converts any image.Image to RGB (alpha is dropped, as
// transformers' convert("RGB") does). Its size is checked against the
// default limits.
func ImageFromGo(img image.Image) (*Image, error) { return imageFromGo(img, Limits{}.withDefaults()) }

func imageFromGo(img image.Image, limits Limits) (*Image, error) {
	if img == nil {
		return nil, fmt.Errorf("nil image: %w", ErrInvalidImage)
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if err := checkSize(w, h, limits); err != nil {
		return nil, err
	}
	switch img.(type) {
	case *image.Gray, *image.NRGBA, *image.RGBA:
	default:
		// Everything else (YCbCr, paletted, 16-bit, CMYK) goes through an
		// NRGBA copy.
		n := image.NewNRGBA(image.Rect(0, 0, w, h))
		draw.Draw(n, n.Bounds(), img, b.Min, draw.Src)
		return imageFromGo(n, limits)
	}
	rgb := make([]byte, w*h*3)
	switch src := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+w]
			dst := rgb[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				dst[x*3], dst[x*3+1], dst[x*3+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[(y)*src.Stride : (y)*src.Stride+w*4]
			dst := rgb[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				dst[x*3], dst[x*3+1], dst[x*3+2] = row[x*4], row[x*4+1], row[x*4+2]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[y*src.Stride : y*src.Stride+w*4]
			dst := rgb[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				r, g, bl, a := row[x*4], row[x*4+1], row[x*4+2], row[x*4+3]
				if a != 0xff && a != 0 { // un-premultiply
					r = uint8(uint32(r) * 0xff / uint32(a))
					g = uint8(uint32(g) * 0xff / uint32(a))
					bl = uint8(uint32(bl) * 0xff / uint32(a))
				}
				dst[x*3], dst[x*3+1], dst[x*3+2] = r, g, bl
			}
		}
	}
	return newImage(w, h, rgb), nil
}

// ImageFromRGB wraps RGB pixels (3 bytes each, row-major, w × h); the slice
// is copied.
func ImageFromRGB(w, h int, rgb []byte) (*Image, error) {
	if err := checkSize(w, h, Limits{}.withDefaults()); err != nil {
		return nil, err
	}
	if len(rgb) != w*h*3 {
		return nil, fmt.Errorf("%d bytes for %d×%d RGB: %w", len(rgb), w, h, ErrInvalidImage)
	}
	return newImage(w, h, append([]byte(nil), rgb...)), nil
}

func newImage(w, h int, rgb []byte) *Image {
	hash := sha256.New()
	var dims [8]byte
	binary.LittleEndian.PutUint32(dims[:4], uint32(w))
	binary.LittleEndian.PutUint32(dims[4:], uint32(h))
	hash.Write(dims[:])
	hash.Write(rgb)
	return &Image{width: w, height: h, rgb: rgb, id: hex.EncodeToString(hash.Sum(nil)[:16])}
}

// Width returns the image width in pixels.
func (im *Image) Width() int { return im.width }

// Height returns the image height in pixels.
func (im *Image) Height() int { return im.height }

// RGB returns the pixels: 3 bytes each, row-major. The slice is the
// image's own; do not modify it.
func (im *Image) RGB() []byte { return im.rgb }

// ID returns a hash of the pixels: equal images have equal IDs. Chunks of
// an image carry it, and caches of encoded images are keyed by it.
func (im *Image) ID() string { return im.id }

// At returns the color of pixel (x, y).
func (im *Image) At(x, y int) color.RGBA {
	i := (y*im.width + x) * 3
	return color.RGBA{im.rgb[i], im.rgb[i+1], im.rgb[i+2], 0xff}
}

// isAudio reports whether data starts like a WAV, MP3 or FLAC file, which
// mtmd would treat as audio.
func isAudio(data []byte) bool {
	switch {
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WAVE":
		return true
	case len(data) >= 4 && string(data[:4]) == "fLaC":
		return true
	case len(data) >= 3 && string(data[:3]) == "ID3":
		return true
	}
	return false
}
