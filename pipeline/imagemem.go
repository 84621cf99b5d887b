package pipeline

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/vlm-go/vlm/mtmd"
)

// DefaultMaxImageBytes is Options.MaxImageBytes's default: 256 MiB, enough
// for a 50-Mpx 8-bit PNG (4 bytes a pixel in Go's decoder) and the request's
// other images reduced; a 16-bit one of more than about 30 Mpx is refused.
const DefaultMaxImageBytes = 256 << 20

// DefaultImageMemory is Options.ImageMemory's default: 1/32 of the
// machine's memory (or of the cgroup's limit, when smaller), at least
// 256 MiB and at most 512 MiB. Decoding is transient: 512 MiB lets two
// 50-Mpx images (200 MB each) or a dozen 12-Mpx photos decode at once, which
// keeps a few cores busy, while a burst of such images costs a 24 GiB host
// 2% of its memory; a small host (up to 8 GiB) decodes one 50-Mpx image at a
// time in 256 MiB.
func DefaultImageMemory() int64 {
	n := totalMemory() / 32
	return min(max(n, 256<<20), 512<<20)
}

// processBudget is the image memory shared by the pipelines whose
// Options.ImageMemory is 0.
var processBudget = sync.OnceValue(func() *mtmd.MemoryBudget { return mtmd.NewMemoryBudget(DefaultImageMemory()) })

// setupImageMemory sets the pipeline's image limits, budget and
// per-request bound from its options and the projector's image pixels.
func (p *Pipeline) setupImageMemory(pixels int) {
	p.limits = p.opts.ImageLimits
	if p.limits.ReducePixels == 0 {
		p.limits.ReducePixels = pixels
	}
	switch m := p.opts.ImageMemory; {
	case m == 0:
		p.budget = processBudget()
	case m > 0:
		p.budget = mtmd.NewMemoryBudget(m)
	}
	switch m := p.opts.MaxImageBytes; {
	case m > 0:
		p.maxImageBytes = m
	case m == 0:
		p.maxImageBytes = DefaultMaxImageBytes
		if l := p.budget.Limit(); l > 0 && l < p.maxImageBytes {
			p.maxImageBytes = l
		}
	}
}

// ImageMemory returns the bytes of the pipeline's image memory budget (0:
// no bound) and the bytes decodes hold now.
func (p *Pipeline) ImageMemory() (limit, inUse int64) { return p.budget.Limit(), p.budget.InUse() }

// totalMemory is the machine's memory in bytes, or the cgroup's limit when
// smaller; 0 when unknown (not Linux).
func totalMemory() int64 {
	var total int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				total = kb << 10
				break
			}
		}
		f.Close()
	}
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}
