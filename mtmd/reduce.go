package mtmd

import (
	"image"
	"image/color"
	"math"

	"github.com/vlm-go/vlm/gguf"
)

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
