package testmodel

import (
	"hash/fnv"
	"math/rand/v2"
)

// normalGen draws approximately normal float32 values fast and
// deterministically: each value is the centred sum of the four 16-bit lanes
// of one PCG output (Irwin–Hall with n = 4, bounded at ±3.46σ), scaled to
// unit variance.
type normalGen struct {
	pcg *rand.PCG
}

// irwinHallSD is the standard deviation of the sum of four independent
// uniform integers in [0, 65535]: 2·sqrt((65536²−1)/12).
const irwinHallSD = 37837.227

// newNormalGen seeds a generator for one tensor from the spec's seed and the
// tensor's name, so that a tensor's values depend on nothing else (not on
// order, not on other tensors).
func newNormalGen(seed uint64, name string) normalGen {
	h := fnv.New64a()
	h.Write([]byte(name))
	return normalGen{pcg: rand.NewPCG(seed, h.Sum64())}
}

// fill sets dst to values with mean 0 and standard deviation std.
func (g normalGen) fill(dst []float32, std float32) {
	k := std / irwinHallSD
	for i := range dst {
		u := g.pcg.Uint64()
		s := u&0xffff + u>>16&0xffff + u>>32&0xffff + u>>48
		dst[i] = (float32(s) - 2*65535) * k
	}
}
