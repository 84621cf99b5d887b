package pipeline_test

import (
	"bufio"
	"context"
	"fmt"
	"image/color"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/imagetest"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/pipeline"
)

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM).
func procStatus(t testing.TB, field string) int64 {
	t.Helper()
	n, err := readStatus(field)
	require.NoError(t, err)
	return n
}

func readStatus(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

const mib = 1 << 20

// TestImageBurstRSS is issue 24's attack: two requests at once, each of 8
// solid-colour 7000 × 7000 PNGs (49 Mpx, under the 50 Mpx limit; about 200
// KB each), through a pipeline with the default image memory. Before, both
// were answered while the process grew by 3.7 GiB and stayed 3.5 GiB
// larger. Now the images decode within the budget, each reduced to what
// the projector uses before the next: the peak RSS grows by less than
// 512 MiB, and after the burst the RSS comes back near where it was.
//
// The peak is VmHWM after resetting it (/proc/self/clear_refs), and the
// highest VmRSS sampled every millisecond where that reset is refused.
// Rerun: ./build.sh test ./pipeline -run TestImageBurstRSS -v -count=1
func TestImageBurstRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes sixteen 49-megapixel images")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs Linux's /proc/self/status")
	}
	if raceEnabled {
		t.Skip("RSS bounds do not hold under the race detector (its shadow memory grows with the heap)")
	}
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{Sequences: 2})
	limit, _ := p.ImageMemory()
	var reqs [2][]pipeline.Image
	for r := range reqs {
		for i := range 8 {
			reqs[r] = append(reqs[r], pipeline.ImageBytes(imagetest.SolidPNG(7000, 7000, color.RGBA{uint8(30 * i), uint8(100 * r), 77, 255})))
		}
	}
	ctx := context.Background()
	opts := pipeline.GenerateOptions{MaxTokens: 2}
	// A first small request, so that the baseline includes what any
	// request leaves (the context's buffers, the encoder's graph).
	_, err := p.Run(ctx, pipeline.Input{Text: "warm up", Images: []pipeline.Image{pipeline.ImageBytes(imagetest.SolidPNG(64, 64, color.RGBA{1, 2, 3, 255}))}}, opts)
	require.NoError(t, err)

	runtime.GC()
	debug.FreeOSMemory()
	base := procStatus(t, "VmRSS")
	hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	var sampled int64
	stop := make(chan struct{})
	sampler := sync.WaitGroup{}
	sampler.Go(func() {
		for {
			if n, err := readStatus("VmRSS"); err == nil {
				sampled = max(sampled, n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for r, imgs := range reqs {
		wg.Go(func() {
			_, errs[r] = p.Run(ctx, pipeline.Input{Text: "What colour?", Images: imgs}, opts)
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	sampler.Wait()
	peak := sampled
	if hwmReset {
		peak = max(peak, procStatus(t, "VmHWM"))
	}
	for _, err := range errs {
		require.NoError(t, err)
	}
	_, inUse := p.ImageMemory()
	assert.EqualValues(t, 0, inUse)
	time.Sleep(1500 * time.Millisecond) // the budget returns memory at most once a second
	after := procStatus(t, "VmRSS")
	t.Logf("image memory %d MiB, projector pixels %d; baseline RSS %d MiB, peak +%d MiB (VmHWM reset: %v), after +%d MiB; both requests in %v",
		limit/mib, p.Projector().ImagePixels(), base/mib, (peak-base)/mib, hwmReset, (after-base)/mib, took.Round(time.Millisecond))
	assert.Less(t, peak-base, int64(512*mib), "peak RSS growth")
	assert.Less(t, after-base, int64(128*mib), "RSS after the burst")
}

// TestRequestOverImageBytes: through Run, a request whose images need more
// than Options.MaxImageBytes fails before decoding with an
// *mtmd.ImageMemoryError (ErrImageTooLarge), and the pipeline answers the
// next request.
func TestRequestOverImageBytes(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{MaxImageBytes: 64 * mib})
	big := imagetest.SolidPNG(7000, 7000, color.RGBA{9, 9, 9, 255})
	ctx := context.Background()
	_, err := p.Run(ctx, pipeline.Input{Text: "x", Images: []pipeline.Image{pipeline.ImageBytes(big), pipeline.ImageBytes(big)}}, pipeline.GenerateOptions{MaxTokens: 2})
	var me *mtmd.ImageMemoryError
	require.ErrorAs(t, err, &me)
	assert.ErrorIs(t, err, pipeline.ErrImageTooLarge)
	assert.Equal(t, 2, me.Images)
	assert.EqualValues(t, 64*mib, me.Limit)
	assert.Contains(t, err.Error(), "7000×7000 (49000000 pixels)")
	_, err = p.Run(ctx, pipeline.Input{Text: "x", Images: []pipeline.Image{pipeline.ImageBytes(imagetest.SolidPNG(300, 200, color.RGBA{9, 9, 9, 255}))}}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)

	_, err = pipeline.New(ctx, "unused", "unused", pipeline.Options{ImageMemory: -2})
	assert.ErrorIs(t, err, pipeline.ErrInvalidOptions)
}
