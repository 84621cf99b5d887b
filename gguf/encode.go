package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// EncodeF32 encodes values as little-endian IEEE 754 single precision, the
// layout of an F32 tensor.
func EncodeF32(vals []float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// DecodeF32 decodes little-endian single precision values; a trailing partial
// value is ignored.
func DecodeF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// EncodeF16 encodes values as little-endian IEEE 754 half precision, rounding
// to nearest even as ggml_fp32_to_fp16 does: values too large become ±Inf,
// NaN becomes the quiet NaN 0x7E00 with its sign.
func EncodeF16(vals []float32) []byte {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(b[2*i:], F32ToF16(v))
	}
	return b
}

// DecodeF16 decodes little-endian half precision values exactly; a trailing
// odd byte is ignored.
func DecodeF16(b []byte) []float32 {
	out := make([]float32, len(b)/2)
	for i := range out {
		out[i] = F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return out
}

// shiftRoundEven returns m >> s rounded to nearest, ties to even (1 <= s < 32).
func shiftRoundEven(m uint32, s uint) uint32 {
	q := m >> s
	r := m & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if r > half || (r == half && q&1 == 1) {
		q++
	}
	return q
}

// F32ToF16 converts a float32 to the bits of the nearest IEEE half (ties to
// even), with the results of ggml_fp32_to_fp16 for overflow and NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Half subnormal (or zero): the value in units of 2^-24.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000 // float32 subnormals have e < -10
		return sign | uint16(shiftRoundEven(m, uint(14-e)))
	}
	// Normal: a carry out of the mantissa increments the exponent, and
	// rounding up past the largest finite half gives 0x7c00 (Inf).
	return sign | uint16(uint32(e)<<10+shiftRoundEven(mant, 13))
}

// F16ToF32 converts the bits of an IEEE half to float32 exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		// zero or subnormal: mant * 2^-24
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}

// q8Block is QK8_0, the values per Q8_0 block.
const q8Block = 32

// EncodeQ8_0 quantizes values to Q8_0 as ggml's quantize_row_q8_0_ref does:
// per block of 32 values an f16 scale d = amax/127 followed by 32 int8
// round(x/d) (half away from zero). len(vals) must be a multiple of 32 and the
// values finite (llama_model_quantize rejects non-finite weights too).
func EncodeQ8_0(vals []float32) ([]byte, error) {
	if len(vals)%q8Block != 0 {
		return nil, fmt.Errorf("gguf: Q8_0 needs a multiple of %d values, got %d", q8Block, len(vals))
	}
	nb := len(vals) / q8Block
	out := make([]byte, nb*34)
	for i := 0; i < nb; i++ {
		x := vals[i*q8Block : (i+1)*q8Block]
		var amax float32
		for j, v := range x {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("gguf: Q8_0: value %d is not finite (%v)", i*q8Block+j, v)
			}
			if a := float32(math.Abs(float64(v))); a > amax {
				amax = a
			}
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		blk := out[i*34 : (i+1)*34]
		binary.LittleEndian.PutUint16(blk, F32ToF16(d))
		for j, v := range x {
			x0 := float32(v * id)
			blk[2+j] = byte(int8(math.Round(float64(x0))))
		}
	}
	return out, nil
}

// DecodeQ8_0 dequantizes Q8_0 blocks (34 bytes per 32 values): d * q.
func DecodeQ8_0(b []byte) ([]float32, error) {
	if len(b)%34 != 0 {
		return nil, fmt.Errorf("gguf: Q8_0 data of %d bytes is not a multiple of 34", len(b))
	}
	nb := len(b) / 34
	out := make([]float32, nb*q8Block)
	for i := 0; i < nb; i++ {
		blk := b[i*34 : (i+1)*34]
		d := F16ToF32(binary.LittleEndian.Uint16(blk))
		for j := 0; j < q8Block; j++ {
			out[i*q8Block+j] = d * float32(int8(blk[2+j]))
		}
	}
	return out, nil
}
