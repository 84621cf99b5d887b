package llama_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
)

func loadTiny(t testing.TB, typ gguf.TensorType) (*llama.Model, testmodel.Spec) {
	t.Helper()
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, typ)
	spec, err := testmodel.TinySpec(testmodel.ProjectorMLP, typ)
	require.NoError(t, err)
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m, spec
}

func newCtx(t testing.TB, m *llama.Model, opts llama.ContextOptions) *llama.Context {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 2
	}
	x, err := m.NewContext(opts)
	require.NoError(t, err)
	t.Cleanup(func() { x.Close() })
	return x
}

func TestLoadEveryTensorTypeAndReadInfo(t *testing.T) {
	for _, typ := range []gguf.TensorType{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			m, spec := loadTiny(t, typ)
			info, err := m.Info()
			require.NoError(t, err)
			assert.Equal(t, "llama", info.Architecture)
			assert.Equal(t, spec.Text.NEmbd, info.NEmbd)
			assert.Equal(t, spec.Text.NEmbd, info.NEmbdInput)
			assert.Equal(t, spec.Text.NLayer, info.NLayer)
			assert.Equal(t, spec.Text.NHead, info.NHead)
			assert.Equal(t, spec.TextParams(), info.NParams)
			assert.Greater(t, info.Size, uint64(0))
			assert.NotEmpty(t, info.Description)
			voc, err := spec.Vocabulary()
			require.NoError(t, err)
			assert.Equal(t, len(voc.Tokens), info.NVocab)
			assert.Equal(t, len(voc.Tokens), m.Vocab().Size())
			tmpl, ok := m.ChatTemplate()
			assert.True(t, ok)
			assert.Contains(t, tmpl, "{%")
			md, err := m.Metadata()
			require.NoError(t, err)
			assert.Equal(t, "llama", md["general.architecture"])
			assert.Equal(t, m.Path(), filepath.Clean(m.Path()))
			n, ok := m.File().Uint32("llama.embedding_length")
			assert.True(t, ok)
			assert.EqualValues(t, spec.Text.NEmbd, n)
		})
	}
}

func TestTokenizeRoundTrip(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	v := m.Vocab()
	for _, text := range []string{
		"the cat sat on the mat", "Hello, world!", "ünïcødé — 漢字 🙂", "  two  spaces\nand a newline", "",
	} {
		toks, err := v.Tokenize(text, false, false)
		require.NoError(t, err, text)
		back, err := v.Detokenize(toks, false, false)
		require.NoError(t, err)
		assert.Equal(t, text, back, "round trip of %q via %v", text, toks)
	}
	// Special tokens: with addSpecial the model's BOS comes first.
	toks, err := v.Tokenize("hi", true, false)
	require.NoError(t, err)
	if v.AddBOS() {
		assert.Equal(t, v.BOS(), toks[0])
	}
	assert.True(t, v.IsEOG(v.EOS()))
	assert.False(t, v.IsEOG(toks[len(toks)-1]))
	eos, err := v.Text(v.EOS())
	require.NoError(t, err)
	assert.NotEmpty(t, eos)
	// parseSpecial turns the EOS string into its token.
	parsed, err := v.Tokenize(eos, false, true)
	require.NoError(t, err)
	assert.Equal(t, []llama.Token{v.EOS()}, parsed)
	assert.True(t, v.IsControl(v.EOS()))
}

func TestUnknownTokenIDs(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	v := m.Vocab()
	for _, id := range []llama.Token{-1, llama.Token(v.Size()), 1 << 30} {
		_, err := v.Piece(id, false)
		assert.ErrorIs(t, err, llama.ErrInvalidArgument)
		_, err = v.Detokenize([]llama.Token{1, id}, false, false)
		assert.ErrorIs(t, err, llama.ErrInvalidArgument)
		_, err = v.Text(id)
		assert.ErrorIs(t, err, llama.ErrInvalidArgument)
		assert.False(t, v.IsEOG(id))
	}
	// An unknown id in a batch is rejected before llama.cpp sees it.
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 64})
	b, err := m.NewBatch(4, 1)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.Add(llama.Token(v.Size()+5), 0, true))
	assert.ErrorIs(t, x.Decode(context.Background(), b), llama.ErrInvalidArgument)
}

func TestDecoderHoldsBackPartialUTF8(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	v := m.Vocab()
	toks, err := v.Tokenize("a漢🙂b", false, false)
	require.NoError(t, err)
	text, err := v.Detokenize(toks, false, false)
	require.NoError(t, err)
	assert.Contains(t, text, "a漢🙂b")
	d := v.NewDecoder(false)
	var out string
	for _, tok := range toks {
		s, err := d.Add(tok)
		require.NoError(t, err)
		assert.True(t, isValidUTF8(s), "piece %q is not valid UTF-8", s)
		out += s
	}
	out += d.Flush()
	// The stream keeps the SentencePiece space prefix that Detokenize drops.
	assert.Equal(t, text, strings.TrimPrefix(out, " "))
	// Byte-fallback tokens of the emoji arrive one byte at a time: the
	// first three must be held back.
	bytesTok := make([]llama.Token, 0, 4)
	for _, b := range []byte("🙂") {
		id := findToken(t, v, fmt.Sprintf("<0x%02X>", b))
		bytesTok = append(bytesTok, id)
	}
	d = v.NewDecoder(false)
	for i, tok := range bytesTok {
		s, err := d.Add(tok)
		require.NoError(t, err)
		if i < 3 {
			assert.Empty(t, s)
		} else {
			assert.Equal(t, "🙂", s)
		}
	}
}

// findToken returns the id whose vocabulary string is text.
func findToken(t *testing.T, v *llama.Vocab, text string) llama.Token {
	t.Helper()
	for i := 0; i < v.Size(); i++ {
		if s, _ := v.Text(llama.Token(i)); s == text {
			return llama.Token(i)
		}
	}
	t.Fatalf("no token %q in the vocabulary", text)
	return -1
}

func isValidUTF8(s string) bool {
	for _, r := range s {
		if r == 0xFFFD {
			return false
		}
	}
	return true
}

// greedy decodes prompt then n greedy tokens, returning the tokens and the
// first step's logits.
func greedy(t testing.TB, x *llama.Context, prompt []llama.Token, n int) ([]llama.Token, []float32) {
	t.Helper()
	ctx := context.Background()
	m := x.Model()
	b, err := m.NewBatch(max(len(prompt), 1), 1)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(ctx, b))
	var out []llama.Token
	var first []float32
	pos := int32(len(prompt))
	for i := 0; i < n; i++ {
		logits, err := x.Logits(-1)
		require.NoError(t, err)
		if first == nil {
			first = logits
		}
		best := 0
		for j, l := range logits {
			require.False(t, math.IsNaN(float64(l)) || math.IsInf(float64(l), 0), "logit %d is %v", j, l)
			if l > logits[best] {
				best = j
			}
		}
		tok := llama.Token(best)
		out = append(out, tok)
		b.Clear()
		require.NoError(t, b.Add(tok, pos, true))
		pos++
		require.NoError(t, x.Decode(ctx, b))
	}
	return out, first
}

func TestGreedyGenerationIsDeterministic(t *testing.T) {
	for _, typ := range []gguf.TensorType{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			m, _ := loadTiny(t, typ)
			prompt, err := m.Vocab().Tokenize("the quick brown fox", true, false)
			require.NoError(t, err)
			x1 := newCtx(t, m, llama.ContextOptions{ContextSize: 128})
			a, la := greedy(t, x1, prompt, 16)
			x2 := newCtx(t, m, llama.ContextOptions{ContextSize: 128})
			b, lb := greedy(t, x2, prompt, 16)
			assert.Equal(t, a, b)
			assert.Equal(t, la, lb)
			assert.Len(t, a, 16)
			// The random model does not answer with one token over and over.
			seen := map[llama.Token]bool{}
			for _, tok := range a {
				seen[tok] = true
			}
			assert.Greater(t, len(seen), 1, "generated %v", a)

			perf, err := x1.Perf()
			require.NoError(t, err)
			assert.Equal(t, len(prompt), perf.PromptTokens)
			assert.GreaterOrEqual(t, perf.EvalTokens, 15)
			require.NoError(t, x1.ResetPerf())
		})
	}
}

func TestMemoryOperations(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 128, Sequences: 2})
	prompt, err := m.Vocab().Tokenize("one two three four", true, false)
	require.NoError(t, err)
	b, err := m.NewBatch(len(prompt), 2)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	logitsFull, err := x.Logits(-1)
	require.NoError(t, err)

	p, err := x.MaxPosition(0)
	require.NoError(t, err)
	assert.EqualValues(t, len(prompt)-1, p)
	p, err = x.MaxPosition(1)
	require.NoError(t, err)
	assert.EqualValues(t, -1, p)

	require.NoError(t, x.CopySequence(0, 1, -1, -1))
	p, _ = x.MaxPosition(1)
	assert.EqualValues(t, len(prompt)-1, p)
	require.NoError(t, x.KeepSequence(1))
	p, _ = x.MaxPosition(0)
	assert.EqualValues(t, -1, p)

	// Remove the last token of sequence 1 and decode it again: same logits.
	require.NoError(t, x.RemovePositions(1, int32(len(prompt)-1), -1))
	p, _ = x.MaxPosition(1)
	assert.EqualValues(t, len(prompt)-2, p)
	b.Clear()
	require.NoError(t, b.Add(prompt[len(prompt)-1], int32(len(prompt)-1), true, 1))
	require.NoError(t, x.Decode(context.Background(), b))
	again, err := x.Logits(-1)
	require.NoError(t, err)
	assert.InDeltaSlice(t, logitsFull, again, 1e-3)

	require.NoError(t, x.ShiftPositions(1, 0, -1, 3))
	p, _ = x.MaxPosition(1)
	assert.EqualValues(t, len(prompt)+2, p)

	require.NoError(t, x.ClearMemory())
	p, _ = x.MaxPosition(1)
	assert.EqualValues(t, -1, p)

	assert.ErrorIs(t, x.KeepSequence(5), llama.ErrInvalidArgument)
	_, err = x.MaxPosition(-2)
	assert.ErrorIs(t, err, llama.ErrInvalidArgument)
}

func TestPromptLongerThanContext(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 32, BatchSize: 32})
	n := x.Options().ContextSize // llama.cpp rounds 32 up to 256
	require.GreaterOrEqual(t, n, 32)
	b, err := m.NewBatch(n, 1)
	require.NoError(t, err)
	defer b.Close()
	tok := m.Vocab().BOS()
	// Fill the context, then one more token does not fit.
	for i := 0; i < n; i++ {
		require.NoError(t, b.Add(tok, int32(i), i == n-1))
	}
	for start := 0; start < n; start += x.Options().BatchSize {
		sub, err := m.NewBatch(x.Options().BatchSize, 1)
		require.NoError(t, err)
		for i := start; i < min(n, start+x.Options().BatchSize); i++ {
			require.NoError(t, sub.Add(tok, int32(i), i == n-1))
		}
		require.NoError(t, x.Decode(context.Background(), sub))
		sub.Close()
	}
	b.Clear()
	require.NoError(t, b.Add(tok, int32(n), true))
	err = x.Decode(context.Background(), b)
	require.Error(t, err)
	assert.ErrorIs(t, err, llama.ErrContextFull, "a position past the context")
	// The context still works after clearing.
	require.NoError(t, x.ClearMemory())
	b.Clear()
	require.NoError(t, b.Add(tok, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.gguf")
	require.NoError(t, os.WriteFile(text, []byte("this is a text file, not a model\n"), 0o644))
	good, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	truncated := filepath.Join(dir, "truncated.gguf")
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o644))

	ctx := context.Background()
	_, err = llama.Load(ctx, filepath.Join(dir, "missing.gguf"), llama.LoadOptions{})
	assert.ErrorIs(t, err, llama.ErrNotFound)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = llama.Load(ctx, text, llama.LoadOptions{})
	assert.ErrorIs(t, err, llama.ErrInvalidModel)
	assert.ErrorIs(t, err, gguf.ErrNotGGUF)
	_, err = llama.Load(ctx, truncated, llama.LoadOptions{})
	assert.ErrorIs(t, err, llama.ErrInvalidModel)
	_, err = llama.Load(ctx, good, llama.LoadOptions{GPULayers: -5})
	assert.ErrorIs(t, err, llama.ErrInvalidArgument)

	// A projector is not a text model.
	_, proj := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	_, err = llama.Load(ctx, proj, llama.LoadOptions{})
	assert.Error(t, err)
}

func TestLoadCancellation(t *testing.T) {
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF32)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := llama.Load(ctx, path, llama.LoadOptions{})
	assert.ErrorIs(t, err, llama.ErrCancelled)
	assert.ErrorIs(t, err, context.Canceled)

	// A progress callback that refuses stops the load.
	calls := 0
	_, err = llama.Load(context.Background(), path, llama.LoadOptions{NoMmap: true, Progress: func(p float32) bool {
		calls++
		return false
	}})
	assert.ErrorIs(t, err, llama.ErrCancelled)
	assert.Equal(t, 1, calls)

	var last float32
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{Progress: func(p float32) bool { last = p; return true }})
	require.NoError(t, err)
	defer m.Close()
	assert.InDelta(t, 1.0, last, 1e-6)
}

func TestUseAfterClose(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 64})
	b, err := m.NewBatch(4, 1)
	require.NoError(t, err)
	require.NoError(t, b.Add(1, 0, true))

	// Closing the model while a context is open keeps it alive for the context.
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	require.NoError(t, x.Decode(context.Background(), b))
	_, err = m.Info()
	assert.ErrorIs(t, err, llama.ErrClosed)
	_, err = m.NewContext(llama.ContextOptions{})
	assert.ErrorIs(t, err, llama.ErrClosed)
	_, err = m.Vocab().Tokenize("x", false, false)
	assert.ErrorIs(t, err, llama.ErrClosed)

	require.NoError(t, x.Close())
	require.NoError(t, x.Close())
	assert.ErrorIs(t, x.Decode(context.Background(), b), llama.ErrClosed)
	_, err = x.Logits(0)
	assert.ErrorIs(t, err, llama.ErrClosed)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())
	assert.ErrorIs(t, b.Add(1, 0, false), llama.ErrClosed)
	var nilModel *llama.Model
	assert.NoError(t, nilModel.Close())
}

func TestConcurrentUseOfOneContextIsDetected(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 512, BatchSize: 512})
	b, err := m.NewBatch(256, 1)
	require.NoError(t, err)
	defer b.Close()
	for i := 0; i < 256; i++ {
		require.NoError(t, b.Add(m.Vocab().BOS(), int32(i), i == 255))
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = x.Decode(context.Background(), b)
			if errs[i] == nil {
				_ = x.ClearMemory()
			}
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, llama.ErrConcurrentUse):
			busy++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	assert.GreaterOrEqual(t, ok, 1)
	assert.Equal(t, len(errs), ok+busy)
}

func TestModelSharedByGoroutines(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeQ8_0)
	prompt, err := m.Vocab().Tokenize("shared model", true, false)
	require.NoError(t, err)
	want, _ := greedy(t, newCtx(t, m, llama.ContextOptions{ContextSize: 64}), prompt, 8)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, err := m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
			if !assert.NoError(t, err) {
				return
			}
			defer x.Close()
			got, _ := greedy(t, x, prompt, 8)
			assert.Equal(t, want, got)
		}()
	}
	wg.Wait()
}

func TestDecodeCancelled(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 64})
	b, err := m.NewBatch(4, 1)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.Add(1, 0, true))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = x.Decode(ctx, b)
	assert.ErrorIs(t, err, llama.ErrCancelled)
	assert.ErrorIs(t, err, context.Canceled)
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, x.Decode(ctx, b), "an aborted decode must not poison the next one")
}

func TestContextOptionsValidation(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	for _, o := range []llama.ContextOptions{
		{ContextSize: -1}, {BatchSize: 64, UBatchSize: 128}, {Sequences: 1000}, {Threads: -2},
	} {
		_, err := m.NewContext(o)
		assert.ErrorIs(t, err, llama.ErrInvalidArgument, "%+v", o)
	}
	x := newCtx(t, m, llama.ContextOptions{})
	o := x.Options()
	assert.Positive(t, o.ContextSize)
	assert.Equal(t, o.BatchSize, o.UBatchSize)
	assert.ErrorIs(t, x.SetThreads(0, 1), llama.ErrInvalidArgument)
	require.NoError(t, x.SetThreads(1, 2))
	require.NoError(t, x.SetCausalAttention(true))
}

func TestEmbeddingsOutput(t *testing.T) {
	m, spec := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 64, Embeddings: true})
	b, err := m.NewBatch(4, 1)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence([]llama.Token{1, 5, 9}, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	e, err := x.Embeddings(-1)
	require.NoError(t, err)
	assert.Len(t, e, spec.Text.NEmbd)
}

func TestQuantizeToQ8_0(t *testing.T) {
	src, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF32)
	dst := filepath.Join(t.TempDir(), "q8.gguf")
	require.NoError(t, llama.Quantize(context.Background(), src, dst, llama.QuantQ8_0, 2))
	f, err := gguf.Open(dst)
	require.NoError(t, err)
	q8 := 0
	for _, ti := range f.Tensors {
		if ti.Type == gguf.TypeQ8_0 {
			q8++
		}
	}
	assert.Positive(t, q8)
	srcInfo, _ := os.Stat(src)
	dstInfo, _ := os.Stat(dst)
	assert.Less(t, dstInfo.Size(), srcInfo.Size()/2)
	m, err := llama.Load(context.Background(), dst, llama.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	prompt, _ := m.Vocab().Tokenize("quantized", true, false)
	toks, _ := greedy(t, newCtx(t, m, llama.ContextOptions{ContextSize: 64}), prompt, 4)
	assert.Len(t, toks, 4)

	assert.Error(t, llama.Quantize(context.Background(), filepath.Join(t.TempDir(), "none.gguf"), dst, llama.QuantQ8_0, 1))
	assert.ErrorIs(t, llama.Quantize(context.Background(), src, dst, llama.QuantType(999), 1), llama.ErrInvalidArgument)
	assert.ErrorIs(t, llama.Quantize(context.Background(), src, dst, llama.QuantQ8_0, -1), llama.ErrInvalidArgument, "threads < 0")
}
