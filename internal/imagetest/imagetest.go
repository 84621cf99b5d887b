// Package imagetest writes test images that are large in pixels and small
// in bytes, without holding their pixels in memory.
package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image/color"
)

// SolidPNG returns an 8-bit RGB PNG of w × h pixels of colour c, written
// row by row (only one row is ever in memory): 7000 × 7000 pixels take
// about 200 KB.
func SolidPNG(w, h int, c color.RGBA) []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // 8-bit truecolour, no interlace
	chunk(&out, "IHDR", ihdr)
	var idat bytes.Buffer
	z, _ := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	row := make([]byte, 1+3*w)
	for x := range w {
		row[1+3*x], row[2+3*x], row[3+3*x] = c.R, c.G, c.B
	}
	z.Write(row) // filter None
	up := make([]byte, 1+3*w)
	up[0] = 2 // filter Up: every later row equals the one above
	for range h - 1 {
		z.Write(up)
	}
	z.Close()
	chunk(&out, "IDAT", idat.Bytes())
	chunk(&out, "IEND", nil)
	return out.Bytes()
}

func chunk(out *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	out.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	out.WriteString(typ)
	out.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	out.Write(n[:])
}
