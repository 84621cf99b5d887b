package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"slices"
	"time"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// repeatOptions configure the -repeat benchmark.
type repeatOptions struct {
	preset   string
	typ      gguf.TensorType
	threads  int
	asks     int  // second asks measured (the median is reported)
	oneTile  bool // one encoder tile per picture instead of the preset's tiling
	noCache  bool // also measure a pipeline with its image cache off
	cacheDir string
}

// runRepeat measures asking again about the same picture through the
// pipeline (the user's path: PNG bytes in, first token out): the first ask's
// time to first token, the same picture with other questions, and the third
// turn of a session holding two pictures, with their ratios.
func runRepeat(o repeatOptions) error {
	ctx := context.Background()
	mp, pp, err := ensurePreset(ctx, o.preset, o.typ, o.oneTile, o.cacheDir)
	if err != nil {
		return err
	}
	popts := pipeline.Options{Threads: o.threads, SequenceLength: 8192}
	p, err := pipeline.New(ctx, mp, pp, popts)
	if err != nil {
		return err
	}
	defer p.Close()
	gen := pipeline.GenerateOptions{MaxTokens: 2, Sampler: sampler.Config{LogitBias: eogBan(p.Model())}}
	pics := make([][]byte, 3)
	for i := range pics {
		var buf bytes.Buffer
		if err := png.Encode(&buf, pictureSeeded(512, uint8(40*i))); err != nil {
			return err
		}
		pics[i] = buf.Bytes()
	}
	ask := func(p *pipeline.Pipeline, q string, pic []byte) (pipeline.Stats, error) {
		r, err := p.Run(ctx, pipeline.Input{Text: q, Images: []pipeline.Image{pipeline.ImageBytes(pic)}}, gen)
		if err != nil {
			return pipeline.Stats{}, err
		}
		return r.Stats, nil
	}
	questions := []string{"What is in this picture?", "Which colours are there?", "Is there a person?",
		"What is at the centre?", "Is it day or night?", "How many objects are there?", "Is it a photo?"}
	question := func(i int) string {
		if i < len(questions) {
			return questions[i]
		}
		return fmt.Sprintf("Question %d about it?", i)
	}

	fmt.Fprintln(os.Stderr, "first ask (preprocess + encode the picture)...")
	first, err := ask(p, question(0), pics[0])
	if err != nil {
		return err
	}
	again, err := repeatAsks(o.asks, func(i int) (pipeline.Stats, error) { return ask(p, question(i+1), pics[0]) })
	if err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "session: turn 1 with two pictures...")
	s, err := p.NewSession(pipeline.SessionOptions{})
	if err != nil {
		return err
	}
	defer s.Close()
	turn := func(text string, pics ...[]byte) (pipeline.Stats, error) {
		var imgs []pipeline.Image
		for _, b := range pics {
			imgs = append(imgs, pipeline.ImageBytes(b))
		}
		r, err := s.Send(ctx, pipeline.Input{Text: text, Images: imgs}, gen)
		if err != nil {
			return pipeline.Stats{}, err
		}
		return r.Stats, nil
	}
	t1, err := turn("Compare these two pictures.", pics[1], pics[2])
	if err != nil {
		return err
	}
	if _, err := turn("Which one is brighter?"); err != nil {
		return err
	}
	t3, err := turn("And which one has more red in it?")
	if err != nil {
		return err
	}

	var off []pipeline.Stats
	if o.noCache {
		fmt.Fprintln(os.Stderr, "the same with the image cache off (first ask again)...")
		popts.ImageCacheBytes = -1
		q, err := pipeline.New(ctx, mp, pp, popts)
		if err != nil {
			return err
		}
		defer q.Close()
		if _, err := ask(q, question(0), pics[0]); err != nil {
			return err
		}
		if off, err = repeatAsks(o.asks, func(i int) (pipeline.Stats, error) { return ask(q, question(i+1), pics[0]) }); err != nil {
			return err
		}
	}

	tiles := "preset tiling"
	if o.oneTile {
		tiles = "one tile"
	}
	fmt.Printf("preset %s %s, %d threads, 512 px PNG pictures (%s), second ask: median of %d\n", o.preset, o.typ, o.threads, tiles, o.asks)
	fmt.Printf("%-34s %12s %10s %10s %10s %8s\n", "", "TTFT", "prefill", "other", "evaluated", "cached")
	row := func(name string, st pipeline.Stats) {
		fmt.Printf("%-34s %12s %10s %10s %10d %8d\n", name, ms(st.TimeToFirstToken), ms(st.PrefillTime),
			ms(st.TimeToFirstToken-st.PrefillTime), st.EvaluatedTokens, st.CachedTokens)
	}
	row("first ask", first)
	med := median(again)
	row("same picture, other question", med)
	row("session turn 1 (two pictures)", t1)
	row("session turn 3", t3)
	if off != nil {
		row("same picture, image cache off", median(off))
	}
	fmt.Printf("first / second ask TTFT: %.0f×\n", ratio(first.TimeToFirstToken, med.TimeToFirstToken))
	fmt.Printf("session turn 1 / turn 3 TTFT: %.0f×\n", ratio(t1.TimeToFirstToken, t3.TimeToFirstToken))
	if off != nil {
		fmt.Printf("second ask, cache off / on: %.1f×\n", ratio(median(off).TimeToFirstToken, med.TimeToFirstToken))
	}
	fmt.Printf("prompt entries: first ask %d (%d image), session turn 3 %d (%d image)\n",
		first.PromptTokens, first.ImageTokens, t3.PromptTokens, t3.ImageTokens)
	return nil
}

// repeatAsks runs n asks and returns their stats.
func repeatAsks(n int, f func(i int) (pipeline.Stats, error)) ([]pipeline.Stats, error) {
	out := make([]pipeline.Stats, 0, n)
	for i := range n {
		st, err := f(i)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// median returns the stats whose time to first token is the median.
func median(sts []pipeline.Stats) pipeline.Stats {
	s := slices.Clone(sts)
	slices.SortFunc(s, func(a, b pipeline.Stats) int { return int(a.TimeToFirstToken - b.TimeToFirstToken) })
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// eogBan keeps random weights from ending the answer before its first token.
func eogBan(m *llama.Model) map[llama.Token]float32 {
	ban := map[llama.Token]float32{}
	for _, t := range m.Vocab().EOGTokens() {
		ban[t] = -1e9
	}
	return ban
}

// ensurePreset writes (or finds) the preset's pair with weights of type typ
// in dir — one encoder tile per picture when oneTile — and says how long
// that took.
func ensurePreset(ctx context.Context, preset string, typ gguf.TensorType, oneTile bool, dir string) (modelPath, projPath string, err error) {
	spec, err := testmodel.Preset(preset)
	if err != nil {
		return "", "", err
	}
	spec.WeightType = typ
	if oneTile {
		spec.Projector.PreprocImageSize = 0
	}
	t0 := time.Now()
	if modelPath, projPath, err = testmodel.Ensure(ctx, dir, spec); err != nil {
		return "", "", err
	}
	fmt.Fprintf(os.Stderr, "model ready in %v\n", time.Since(t0).Round(time.Millisecond))
	return modelPath, projPath, nil
}
