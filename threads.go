package vlm

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strings"
	"sync"
)

// DefaultThreads is the CPU thread count contexts and projectors use when
// none is given: the physical cores this process may run on, less one,
// and at least 1.
//
// Why not every CPU: ggml's worker threads wait for each other at every
// graph node by spinning, so when anything else needs a core (the Go
// runtime, the rest of the service, another process) the thread that lost
// its core stalls all the others for a scheduler time slice. Measured on a
// 2-core machine while a compiler ran beside it (SmolVLM-256M shapes, Q8_0):
// decode 33–36 tok/s with 1 thread, 2.9–5.3 tok/s with 2; on the same
// machine idle, 40–43 tok/s with 1 and 73–78 with 2. Hyper-threads share a
// core's arithmetic units and only add contention. Leaving one core free
// costs 1/n of the speed of an idle n-core machine (half on 2 cores, an
// eighth on 8) and keeps a busy one usable; set Threads explicitly to use
// them all when nothing else runs.
func DefaultThreads() int {
	defaultThreadsOnce.Do(func() {
		n := physicalCores()
		if n <= 0 || n > runtime.NumCPU() {
			n = runtime.NumCPU()
		}
		defaultThreads = max(1, n-1)
	})
	return defaultThreads
}

var (
	defaultThreadsOnce sync.Once
	defaultThreads     int
)

// physicalCores counts distinct (package, core) pairs in /proc/cpuinfo; 0
// when it cannot tell (other systems, containers that hide it).
func physicalCores() int {
	if runtime.GOOS != "linux" {
		return 0
	}
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return countCores(data)
}

// countCores parses /proc/cpuinfo text.
func countCores(cpuinfo []byte) int {
	cores := map[[2]string]bool{}
	var pkg, core string
	flush := func() {
		if core != "" {
			cores[[2]string{pkg, core}] = true
		}
		pkg, core = "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "physical id":
			pkg = strings.TrimSpace(v)
		case "core id":
			core = strings.TrimSpace(v)
		}
	}
	flush()
	return len(cores)
}
