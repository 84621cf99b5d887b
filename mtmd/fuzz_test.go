package mtmd

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// fuzzLimits are the limits FuzzDecodeImage decodes with: small, so that
// a header that claims a large image must be rejected before decoding.
var fuzzLimits = Limits{MaxPixels: 1 << 20, MaxBytes: 1 << 22}

// imageSentinels are the errors every DecodeImageBytes failure must match
// one of.
var imageSentinels = []error{ErrInvalidImage, ErrUnsupportedFormat, ErrImageTooLarge, ErrAudioUnsupported}

// checkDecoded checks DecodeImageBytes' contract for one input: an error
// matching one of imageSentinels, or an image within the limits whose RGB
// buffer has exactly width × height × 3 bytes.
func checkDecoded(t *testing.T, data []byte, im *Image, err error) {
	t.Helper()
	if err != nil {
		if im != nil {
			t.Fatalf("both an image and an error: %v", err)
		}
		for _, s := range imageSentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error matches no package sentinel: %v (input %d bytes)", err, len(data))
	}
	if im == nil {
		t.Fatal("nil image without an error")
	}
	w, h := im.Width(), im.Height()
	if w <= 0 || h <= 0 || w*h > fuzzLimits.MaxPixels {
		t.Fatalf("decoded %d×%d, limit %d pixels", w, h, fuzzLimits.MaxPixels)
	}
	if len(im.rgb) != w*h*3 {
		t.Fatalf("%d RGB bytes for %d×%d", len(im.rgb), w, h)
	}
	if im.ID() == "" {
		t.Fatal("image without an ID")
	}
}

// FuzzDecodeImage feeds arbitrary bytes to DecodeImageBytes: it must never
// panic, and must return either a package sentinel error or an image within
// the limits. The seed corpus in testdata/fuzz/FuzzDecodeImage holds small
// valid PNG, JPEG, GIF, BMP, TIFF and WebP files, truncated ones, and headers
// claiming huge sizes (see TestFuzzSeedCorpus; regenerate it with
// ./build.sh go test ./mtmd/ -run TestFuzzSeedCorpus -args -update-fuzz-seeds).
func FuzzDecodeImage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := DecodeImageBytes(data, fuzzLimits)
		checkDecoded(t, data, im, err)
	})
}

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzDecodeImage from the generators in fuzz_test.go")

const seedDir = "testdata/fuzz/FuzzDecodeImage"

// seedImage is a deterministic w×h picture with some alpha.
func seedImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 37), uint8(y * 53), uint8((x + y) * 29), uint8(255 - x*5)})
		}
	}
	return img
}

func mustEncode(enc func(*bytes.Buffer) error) []byte {
	var buf bytes.Buffer
	if err := enc(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// webpRIFF wraps one chunk in a WebP RIFF container.
func webpRIFF(fourCC string, payload []byte) []byte {
	chunk := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))...)
	chunk = append(chunk, payload...)
	if len(payload)%2 == 1 {
		chunk = append(chunk, 0)
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	out = append(out, "WEBP"...)
	return append(out, chunk...)
}

// bitWriter writes VP8L's least-significant-bit-first bit stream.
type bitWriter struct {
	buf   []byte
	acc   uint64
	nBits uint
}

func (b *bitWriter) write(v uint64, n uint) {
	b.acc |= v << b.nBits
	b.nBits += n
	for b.nBits >= 8 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
		b.nBits -= 8
	}
}

func (b *bitWriter) bytes() []byte {
	if b.nBits > 0 {
		return append(b.buf, byte(b.acc))
	}
	return b.buf
}

// solidLosslessWebP encodes a w×h lossless WebP (VP8L) of one ARGB color:
// no transforms, no color cache, and five "simple" one-symbol prefix codes
// (green, red, blue, alpha, distance), so each pixel takes zero bits.
func solidLosslessWebP(w, h int, c color.NRGBA) []byte {
	var b bitWriter
	b.write(0x2f, 8) // signature
	b.write(uint64(w-1), 14)
	b.write(uint64(h-1), 14)
	b.write(1, 1) // alpha is used
	b.write(0, 3) // version
	b.write(0, 1) // no transform
	b.write(0, 1) // no color cache
	b.write(0, 1) // no meta prefix codes
	for _, sym := range []uint8{c.G, c.R, c.B, c.A} {
		b.write(1, 1) // simple code
		b.write(0, 1) // one symbol
		b.write(1, 1) // 8-bit symbol
		b.write(uint64(sym), 8)
	}
	b.write(1, 1) // distance: simple code,
	b.write(0, 1) // one symbol,
	b.write(0, 1) // 1-bit symbol
	b.write(0, 1) // 0
	return webpRIFF("VP8L", b.bytes())
}

func mustBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// pngWithSize rewrites a PNG's IHDR to claim w×h pixels (with a valid CRC).
func pngWithSize(data []byte, w, h uint32) []byte {
	data = slices.Clone(data)
	binary.BigEndian.PutUint32(data[16:], w)
	binary.BigEndian.PutUint32(data[20:], h)
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	return data
}

// fuzzSeeds generates the seed corpus. Names say what DecodeImageBytes
// must do with the input under fuzzLimits: "valid-" decodes, "huge-" is
// ErrImageTooLarge, "audio-" ErrAudioUnsupported; the rest are errors.
func fuzzSeeds() map[string][]byte {
	img := seedImage(9, 7)
	pngData := mustEncode(func(b *bytes.Buffer) error { return png.Encode(b, img) })
	gray16 := image.NewGray16(image.Rect(0, 0, 5, 3))
	for i := range gray16.Pix {
		gray16.Pix[i] = uint8(i * 17)
	}
	jpegData := mustEncode(func(b *bytes.Buffer) error { return jpeg.Encode(b, img, &jpeg.Options{Quality: 80}) })
	grayJPEG := mustEncode(func(b *bytes.Buffer) error {
		return jpeg.Encode(b, image.NewGray(image.Rect(0, 0, 17, 9)), nil)
	})
	gifData := mustEncode(func(b *bytes.Buffer) error { return gif.Encode(b, img, &gif.Options{NumColors: 16}) })
	anim := mustEncode(func(b *bytes.Buffer) error {
		frame := func(c uint8) *image.Paletted {
			p := image.NewPaletted(image.Rect(0, 0, 6, 4), palette.Plan9)
			for i := range p.Pix {
				p.Pix[i] = c + uint8(i)
			}
			return p
		}
		return gif.EncodeAll(b, &gif.GIF{Image: []*image.Paletted{frame(10), frame(90)}, Delay: []int{5, 5}})
	})
	bmpData := mustEncode(func(b *bytes.Buffer) error { return bmp.Encode(b, img) })
	tiffData := mustEncode(func(b *bytes.Buffer) error { return tiff.Encode(b, img, nil) })
	tiffDeflate := mustEncode(func(b *bytes.Buffer) error {
		return tiff.Encode(b, img, &tiff.Options{Compression: tiff.Deflate, Predictor: true})
	})
	webpLossless := solidLosslessWebP(12, 10, color.NRGBA{200, 100, 50, 255})
	// 1×1 files from the WebP feature tests that browsers' detection
	// scripts use: lossy (VP8) and lossy with alpha (VP8X + ALPH).
	webpLossy := mustBase64("UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA")
	webpAlpha := mustBase64("UklGRkoAAABXRUJQVlA4WAoAAAAQAAAAAAAAAAAAQUxQSAwAAAARBxAR/Q9ERP8DAABWUDggGAAAABQBAJ0BKgEAAQAAAP4AAA3AAP7mtQAAAA==")

	hugeGIF := slices.Clone(gifData) // logical screen 65535×65535
	binary.LittleEndian.PutUint16(hugeGIF[6:], 0xffff)
	binary.LittleEndian.PutUint16(hugeGIF[8:], 0xffff)
	hugeBMP := slices.Clone(bmpData) // 30000×30000 in the info header
	binary.LittleEndian.PutUint32(hugeBMP[18:], 30000)
	binary.LittleEndian.PutUint32(hugeBMP[22:], 30000)
	hugeWebP := solidLosslessWebP(16384, 16384, color.NRGBA{1, 2, 3, 4})

	half := func(b []byte) []byte { return slices.Clone(b[:len(b)/2]) }
	return map[string][]byte{
		"valid-png-nrgba":     pngData,
		"valid-png-gray16":    mustEncode(func(b *bytes.Buffer) error { return png.Encode(b, gray16) }),
		"valid-jpeg":          jpegData,
		"valid-jpeg-gray":     grayJPEG,
		"valid-gif":           gifData,
		"valid-gif-animated":  anim,
		"valid-bmp":           bmpData,
		"valid-tiff":          tiffData,
		"valid-tiff-deflate":  tiffDeflate,
		"valid-webp-lossless": webpLossless,
		"valid-webp-lossy":    webpLossy,
		"valid-webp-alpha":    webpAlpha,
		"truncated-png":       half(pngData),
		"truncated-jpeg":      half(jpegData),
		"truncated-gif":       half(gifData),
		"truncated-bmp":       half(bmpData),
		"truncated-tiff":      half(tiffData),
		"truncated-webp":      webpLossy[:len(webpLossy)-10],
		"huge-png":            pngWithSize(pngData, 1<<16, 1<<16),
		"huge-gif":            hugeGIF,
		"huge-bmp":            hugeBMP,
		"huge-webp-lossless":  hugeWebP,
		"zero-png":            pngWithSize(pngData, 0, 7),
		"audio-wav":           append([]byte("RIFF\x24\x00\x00\x00WAVEfmt "), make([]byte, 28)...),
		"empty":               {},
		"text":                []byte("not an image at all"),
	}
}

// marshalSeed writes data in the "go test fuzz v1" corpus file format.
func marshalSeed(data []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n")
}

// unmarshalSeed reads a one-[]byte corpus file.
func unmarshalSeed(file []byte) ([]byte, error) {
	s := strings.TrimSpace(string(file))
	head, body, ok := strings.Cut(s, "\n")
	if !ok || head != "go test fuzz v1" || !strings.HasPrefix(body, "[]byte(") || !strings.HasSuffix(body, ")") {
		return nil, fmt.Errorf("not a one-[]byte corpus file")
	}
	v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(body, "[]byte("), ")"))
	return []byte(v), err
}

// TestFuzzSeedCorpus checks the committed seed corpus: it is what
// fuzzSeeds generates (names), each file parses, and each input gives the
// outcome its name says — so the fuzzer starts from a decodable file of
// every format. With -update-fuzz-seeds it rewrites the corpus first.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := fuzzSeeds()
	if *updateFuzzSeeds {
		require.NoError(t, os.MkdirAll(seedDir, 0o755))
		for name, data := range seeds {
			require.NoError(t, os.WriteFile(filepath.Join(seedDir, name), marshalSeed(data), 0o644))
		}
	}
	for name, data := range seeds {
		t.Run(name, func(t *testing.T) {
			file, err := os.ReadFile(filepath.Join(seedDir, name))
			require.NoError(t, err, "seed missing: run ./build.sh go test ./mtmd/ -run TestFuzzSeedCorpus -args -update-fuzz-seeds")
			committed, err := unmarshalSeed(file)
			require.NoError(t, err)
			// Encoders may change between Go versions; the committed bytes
			// are the corpus, so they are what is checked.
			if !bytes.Equal(committed, data) {
				t.Logf("committed seed differs from today's generator (%d vs %d bytes)", len(committed), len(data))
			}
			im, err := DecodeImageBytes(committed, fuzzLimits)
			checkDecoded(t, committed, im, err)
			switch kind, _, _ := strings.Cut(name, "-"); kind {
			case "valid":
				require.NoError(t, err)
				assert.Positive(t, im.Width()*im.Height())
			case "huge":
				assert.ErrorIs(t, err, ErrImageTooLarge)
			case "audio":
				assert.ErrorIs(t, err, ErrAudioUnsupported)
			default:
				assert.Error(t, err)
			}
		})
	}
}

// TestSolidLosslessWebPDecodes checks the hand-written VP8L encoder behind
// the lossless WebP seed pixel by pixel.
func TestSolidLosslessWebPDecodes(t *testing.T) {
	want := color.NRGBA{200, 100, 50, 255}
	im, err := DecodeImageBytes(solidLosslessWebP(12, 10, want), Limits{})
	require.NoError(t, err)
	require.Equal(t, 12, im.Width())
	require.Equal(t, 10, im.Height())
	for y := 0; y < 10; y++ {
		for x := 0; x < 12; x++ {
			require.Equal(t, color.RGBA{200, 100, 50, 255}, im.At(x, y), "pixel %d,%d", x, y)
		}
	}
}
