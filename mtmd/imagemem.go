package mtmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/vlm-go/vlm/gguf"
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

// reducedSize is the size an image of w × h pixels is scaled down to so
// that it has at most limit pixels, keeping its aspect ratio; ok is false
// when it has no more than that (or limit ≤ 0).
func reducedSize(w, h, limit int) (tw, th int, ok bool) {
	if limit <= 0 || int64(w)*int64(h) <= int64(limit) {
		return w, h, false
	}
	s := math.Sqrt(float64(limit) / (float64(w) * float64(h)))
	tw, th = int(float64(w)*s+1e-6), int(float64(h)*s+1e-6)
	tw, th = min(w, max(1, tw)), min(h, max(1, th))
	for int64(tw)*int64(th) > int64(limit) { // rounding
		if tw >= th {
			tw--
		} else {
			th--
		}
	}
	return tw, th, true
}

// reduce scales src down to tw × th RGB pixels by averaging the source
// pixels of each destination pixel's box (alpha is dropped as
// imageFromGo does). It reads src one row at a time and allocates only the
// result and a few rows, so the full-size image is the only big buffer.
func reduce(src image.Image, tw, th int) []byte {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	xmap := make([]int32, w) // source column → destination column
	cols := make([]uint64, tw)
	for x := range w {
		dx := int(int64(x) * int64(tw) / int64(w))
		xmap[x] = int32(dx)
		cols[dx]++
	}
	sums := make([]uint64, 3*tw)
	row := make([]byte, 3*w)
	out := make([]byte, 3*tw*th)
	dy, rows := 0, uint64(0)
	flush := func() {
		o := out[3*tw*dy : 3*tw*(dy+1)]
		for x := range tw {
			n := cols[x] * rows
			for c := range 3 {
				o[3*x+c] = byte((sums[3*x+c] + n/2) / n)
				sums[3*x+c] = 0
			}
		}
		rows = 0
	}
	for y := range h {
		if d := int(int64(y) * int64(th) / int64(h)); d != dy {
			flush()
			dy = d
		}
		switch s := src.(type) {
		case *image.RGBA: // what PNG decodes to without alpha: no row copy
			pix := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:4*w]
			for x, dx := range xmap {
				p, d := pix[4*x:4*x+4:4*x+4], sums[3*dx:3*dx+3:3*dx+3]
				r, g, bl, a := p[0], p[1], p[2], p[3]
				if a != 0xff && a != 0 {
					r = uint8(uint32(r) * 0xff / uint32(a))
					g = uint8(uint32(g) * 0xff / uint32(a))
					bl = uint8(uint32(bl) * 0xff / uint32(a))
				}
				d[0] += uint64(r)
				d[1] += uint64(g)
				d[2] += uint64(bl)
			}
		default:
			rowRGB(src, b.Min.Y+y, row)
			for x, dx := range xmap {
				p, d := row[3*x:3*x+3:3*x+3], sums[3*dx:3*dx+3:3*dx+3]
				d[0] += uint64(p[0])
				d[1] += uint64(p[1])
				d[2] += uint64(p[2])
			}
		}
		rows++
	}
	flush()
	return out
}

// rowRGB writes the RGB of row y of src into dst (3 bytes a pixel), as
// imageFromGo converts pixels.
func rowRGB(src image.Image, y int, dst []byte) {
	b := src.Bounds()
	w := b.Dx()
	switch s := src.(type) {
	case *image.Gray:
		row := s.Pix[s.PixOffset(b.Min.X, y):]
		for x := range w {
			v := row[x]
			dst[3*x], dst[3*x+1], dst[3*x+2] = v, v, v
		}
	case *image.NRGBA:
		row := s.Pix[s.PixOffset(b.Min.X, y):]
		for x := range w {
			dst[3*x], dst[3*x+1], dst[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	case *image.RGBA:
		row := s.Pix[s.PixOffset(b.Min.X, y):]
		for x := range w {
			r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
			if a != 0xff && a != 0 {
				r = uint8(uint32(r) * 0xff / uint32(a))
				g = uint8(uint32(g) * 0xff / uint32(a))
				bl = uint8(uint32(bl) * 0xff / uint32(a))
			}
			dst[3*x], dst[3*x+1], dst[3*x+2] = r, g, bl
		}
	case *image.YCbCr:
		for x := range w {
			yi, ci := s.YOffset(b.Min.X+x, y), s.COffset(b.Min.X+x, y)
			dst[3*x], dst[3*x+1], dst[3*x+2] = color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
		}
	case *image.Paletted:
		row := s.Pix[s.PixOffset(b.Min.X, y):]
		var lut [256][3]byte
		for i, c := range s.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]byte{n.R, n.G, n.B}
		}
		for x := range w {
			c := lut[row[x]]
			dst[3*x], dst[3*x+1], dst[3*x+2] = c[0], c[1], c[2]
		}
	case image.RGBA64Image: // 16-bit, CMYK, NYCbCrA, …: un-premultiplied as color.NRGBAModel does, without an allocation a pixel
		for x := range w {
			c := s.RGBA64At(b.Min.X+x, y)
			r, g, bl, a := uint32(c.R), uint32(c.G), uint32(c.B), uint32(c.A)
			if a != 0xffff && a != 0 {
				r, g, bl = r*0xffff/a, g*0xffff/a, bl*0xffff/a
			}
			dst[3*x], dst[3*x+1], dst[3*x+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
		}
	default:
		for x := range w {
			n := color.NRGBAModel.Convert(src.At(b.Min.X+x, y)).(color.NRGBA)
			dst[3*x], dst[3*x+1], dst[3*x+2] = n.R, n.G, n.B
		}
	}
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

// MemoryBudget bounds the bytes that image decodes hold at once (their
// ImageInfo.DecodeBytes), across goroutines: a process serving requests
// shares one, so that a burst of large images decodes a few at a time
// instead of all at once. Waiters are served in order. Safe for concurrent
// use; a nil *MemoryBudget is no bound.
type MemoryBudget struct {
	mu          sync.Mutex
	limit       int64
	used        int64
	waiters     []*budgetWaiter
	lastFree    time.Time
	freePending bool // a freeIfIdle is scheduled
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

// NewMemoryBudget returns a budget of limit bytes (> 0).
func NewMemoryBudget(limit int64) *MemoryBudget { return &MemoryBudget{limit: limit} }

// Limit returns the budget's bytes.
func (b *MemoryBudget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// InUse returns the bytes held now.
func (b *MemoryBudget) InUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Acquire takes info.DecodeBytes from the budget, waiting while it is busy
// (see DecodeImageContext for the errors). Give them back with Release.
func (b *MemoryBudget) Acquire(ctx context.Context, info ImageInfo) error {
	if b == nil {
		return nil
	}
	n := info.DecodeBytes
	if n > b.limit {
		return &ImageMemoryError{Scope: "budget", Images: 1, Largest: info, Bytes: n, Limit: b.limit}
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	used := b.used
	b.mu.Unlock()
	start := time.Now()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.mu.Unlock()
		b.Release(n)
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.grant() // the head may have been this waiter
		b.mu.Unlock()
	}
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s image %d×%d: waited %v for %d bytes of the image memory budget (%d of %d in use): %w (%w)",
			info.Format, info.Width, info.Height, time.Since(start).Round(time.Millisecond), n, used, b.limit, ErrBudgetBusy, err)
	}
	return fmt.Errorf("%w (%w)", ErrCancelled, err)
}

// grant wakes the waiters that now fit, in order; b.mu is held.
func (b *MemoryBudget) grant() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.limit {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

// bigRelease is the size from which a release collects garbage first, so
// that the budget bounds the heap (Go frees a decoder's buffers only at the
// next collection, which a small heap's pacing can put after the next big
// allocation).
const bigRelease = 16 << 20

// Release gives back n bytes taken with Acquire. After a large decode it
// runs the garbage collector first, so the next decode reuses the memory
// instead of adding to it; when the budget becomes idle it also returns
// freed memory to the operating system (at most once a second), so that
// the process's RSS falls back after a burst (a release within a second of
// the last return schedules one for the end of that second).
func (b *MemoryBudget) Release(n int64) {
	if b == nil {
		return
	}
	if n >= bigRelease {
		runtime.GC()
	}
	b.mu.Lock()
	b.used -= n
	b.grant()
	free := false
	if b.used == 0 && n >= bigRelease {
		if since := time.Since(b.lastFree); since >= time.Second {
			free, b.lastFree = true, time.Now()
		} else if !b.freePending {
			b.freePending = true
			time.AfterFunc(time.Second-since, b.freeIfIdle)
		}
	}
	b.mu.Unlock()
	if free {
		debug.FreeOSMemory()
	}
}

// freeIfIdle returns freed memory to the operating system if no decode
// holds the budget: the end of a burst whose last release came less than a
// second after the previous return.
func (b *MemoryBudget) freeIfIdle() {
	b.mu.Lock()
	b.freePending = false
	idle := b.used == 0
	if idle {
		b.lastFree = time.Now()
	}
	b.mu.Unlock()
	if idle {
		debug.FreeOSMemory()
	}
}

// MinImagePixels is the least ImagePixels returns: 1 Mpx (1024 × 1024).
const MinImagePixels = 1 << 20

// ImagePixels returns how many pixels of an image the projector's
// preprocessor uses at most (at least MinImagePixels); a larger image can
// be scaled down to it first (Limits.ReducePixels) without the projector
// seeing less. mtmd resizes with a bilinear filter that samples, rather
// than averages, a large image, so reducing first by averaging also keeps
// detail that would alias away.
//
// By projector type (clip.cpp's preprocessing): Qwen-VL and GLM-4V
// (Options.ImageMaxTokens, else 4096, tokens of (patch × merge)² pixels);
// Pixtral, LightOnOCR, Kimi-VL, LFM2 (1024 such tokens); Idefics3/SmolVLM
// (the longest edge resized to clip.vision.preproc_image_size: its square);
// MiniCPM-V, Llama 4 and LLaVA (up to 9 tiles of image_size: 9 ×
// image_size²); the others resize to image_size × image_size, so 4 ×
// image_size² keeps the shorter side whole for aspect ratios up to 4:1.
func (p *Projector) ImagePixels() int { return imagePixels(*p.info, p.maxTok) }

func imagePixels(info gguf.Projector, maxTokens int) int {
	side := int(max(info.ImageSize, info.PreprocImageSize))
	cell := int(max(info.PatchSize, 1) * max(info.MergeFactor, 1))
	var n int
	switch info.Type {
	case "qwen2vl_merger", "qwen2.5vl_merger", "qwen3vl_merger", "glm4v":
		if maxTokens <= 0 {
			maxTokens = 4096
		}
		n = maxTokens * cell * cell
	case "pixtral", "lightonocr", "kimivl", "lfm2":
		if maxTokens <= 0 {
			maxTokens = 1024
		}
		n = maxTokens * cell * cell
	case "idefics3":
		n = side * side
	case "minicpmv", "llama4", "mlp", "mlp_norm", "ldp", "ldpv2":
		n = 9 * side * side
	default:
		n = 4 * side * side
	}
	return max(n, MinImagePixels)
}
