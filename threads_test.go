package vlm

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func cpuinfo(entries ...[2]int) []byte {
	var b strings.Builder
	for i, e := range entries {
		fmt.Fprintf(&b, "processor\t: %d\nmodel name\t: Test CPU\nphysical id\t: %d\ncore id\t\t: %d\n\n", i, e[0], e[1])
	}
	return []byte(b.String())
}

func TestCountCores(t *testing.T) {
	assert.Equal(t, 2, countCores(cpuinfo([2]int{0, 0}, [2]int{0, 1})), "two cores")
	assert.Equal(t, 2, countCores(cpuinfo([2]int{0, 0}, [2]int{0, 1}, [2]int{0, 0}, [2]int{0, 1})), "hyper-threads share a core")
	assert.Equal(t, 4, countCores(cpuinfo([2]int{0, 0}, [2]int{0, 1}, [2]int{1, 0}, [2]int{1, 1})), "two packages")
	assert.Equal(t, 0, countCores([]byte("processor\t: 0\nmodel name\t: no core ids\n")), "unknown")
	assert.Equal(t, 0, countCores(nil))
}

func TestDefaultThreads(t *testing.T) {
	n := DefaultThreads()
	assert.GreaterOrEqual(t, n, 1)
	assert.LessOrEqual(t, n, max(1, runtime.NumCPU()-1), "one core is left free")
	if c := physicalCores(); c > 0 && c <= runtime.NumCPU() {
		assert.Equal(t, max(1, c-1), n)
	}
}
