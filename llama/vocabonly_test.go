package llama_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/llamaaccess"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
)

// loadBoth loads the tiny model of projector type pt twice from one file:
// with all weights and with VocabOnly.
func loadBoth(t *testing.T, pt testmodel.ProjectorType) (full, voc *llama.Model, spec testmodel.Spec) {
	t.Helper()
	path, _ := testmodel.TinyPair(t, pt, gguf.TypeF16)
	spec, err := testmodel.TinySpec(pt, gguf.TypeF16)
	require.NoError(t, err)
	ctx := context.Background()
	full, err = llama.Load(ctx, path, llama.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { full.Close() })
	voc, err = llama.Load(ctx, path, llama.LoadOptions{VocabOnly: true})
	require.NoError(t, err)
	t.Cleanup(func() { voc.Close() })
	return full, voc, spec
}

// TestVocabOnly calls every method of Model and Vocab on a vocab-only model
// (before the fix, Load aborted the process in llama_hparams::n_head) and
// compares what it reports with the same file loaded with weights.
func TestVocabOnly(t *testing.T) {
	for _, pt := range []testmodel.ProjectorType{testmodel.ProjectorMLP, testmodel.ProjectorIdefics3, testmodel.ProjectorGemma3} {
		t.Run(string(pt), func(t *testing.T) {
			full, voc, spec := loadBoth(t, pt)
			sv, err := spec.Vocabulary()
			require.NoError(t, err)

			t.Run("Info", func(t *testing.T) {
				assert.False(t, full.VocabOnly())
				assert.True(t, voc.VocabOnly())
				fi, err := full.Info()
				require.NoError(t, err)
				assert.False(t, fi.VocabOnly)
				vi, err := voc.Info()
				require.NoError(t, err)
				assert.Equal(t, vi, mustInfo(t, voc))
				// What the vocabulary and the file's tensor list give.
				assert.Equal(t, llama.Info{
					Architecture: fi.Architecture, NParams: fi.NParams, Size: fi.Size,
					NVocab: len(sv.Tokens), VocabOnly: true,
				}, vi)
				assert.Equal(t, spec.Text.NHead, fi.NHead, "the full model reports heads")
				assert.Equal(t, full.Architecture(), voc.Architecture())
				assert.Equal(t, full.Path(), voc.Path())
				assert.Equal(t, full.File().Architecture(), voc.File().Architecture())
				// The GGUF keys are there for callers that need a value.
				n, ok := voc.File().Uint32(fi.Architecture + ".embedding_length")
				assert.True(t, ok)
				assert.EqualValues(t, spec.Text.NEmbd, n)
				assert.EqualValues(t, fi.NEmbd, n)
			})

			t.Run("ChatTemplateAndMetadata", func(t *testing.T) {
				ft, fok := full.ChatTemplate()
				vt, vok := voc.ChatTemplate()
				assert.True(t, vok)
				assert.Equal(t, fok, vok)
				assert.Equal(t, ft, vt)
				assert.Equal(t, sv.ChatTemplate, vt)
				fm, err := full.Metadata()
				require.NoError(t, err)
				vm, err := voc.Metadata()
				require.NoError(t, err)
				assert.Equal(t, fm, vm)
				assert.Equal(t, voc.Architecture(), vm["general.architecture"])
			})

			t.Run("SpecialTokens", func(t *testing.T) {
				fv, vv := full.Vocab(), voc.Vocab()
				assert.Equal(t, fv.Size(), vv.Size())
				assert.Equal(t, len(sv.Tokens), vv.Size())
				assert.EqualValues(t, sv.BOS, vv.BOS())
				assert.EqualValues(t, sv.EOS, vv.EOS())
				assert.EqualValues(t, sv.EOT, vv.EOT())
				assert.Equal(t, fv.BOS(), vv.BOS())
				assert.Equal(t, fv.EOS(), vv.EOS())
				assert.Equal(t, fv.EOT(), vv.EOT())
				assert.Equal(t, fv.NL(), vv.NL())
				assert.Equal(t, sv.AddBOS, vv.AddBOS())
				assert.Equal(t, fv.AddBOS(), vv.AddBOS())
				assert.True(t, vv.IsEOG(vv.EOS()))
				assert.Contains(t, vv.EOGTokens(), vv.EOS())
				assert.Equal(t, fv.EOGTokens(), vv.EOGTokens())
				assert.True(t, vv.IsControl(vv.EOS()))
				for id := range vv.Size() {
					tok := llama.Token(id)
					assert.Equal(t, fv.IsEOG(tok), vv.IsEOG(tok), "IsEOG(%d)", id)
					assert.Equal(t, fv.IsControl(tok), vv.IsControl(tok), "IsControl(%d)", id)
					ft, ferr := fv.Text(tok)
					vt, verr := vv.Text(tok)
					require.NoError(t, ferr)
					require.NoError(t, verr)
					assert.Equal(t, sv.Tokens[id], vt)
					assert.Equal(t, ft, vt)
					for _, special := range []bool{false, true} {
						fp, ferr := fv.Piece(tok, special)
						vp, verr := vv.Piece(tok, special)
						require.NoError(t, ferr)
						require.NoError(t, verr)
						assert.Equal(t, fp, vp, "Piece(%d, %v)", id, special)
					}
				}
				// Bad ids are errors, not crashes.
				_, err := vv.Text(llama.Token(vv.Size()))
				assert.ErrorIs(t, err, llama.ErrInvalidArgument)
				_, err = vv.Piece(-1, false)
				assert.ErrorIs(t, err, llama.ErrInvalidArgument)
				assert.False(t, vv.IsEOG(llama.Token(vv.Size())))
			})

			t.Run("Tokenize", func(t *testing.T) {
				fv, vv := full.Vocab(), voc.Vocab()
				bos, err := vv.Text(vv.BOS())
				require.NoError(t, err)
				eos, err := vv.Text(vv.EOS())
				require.NoError(t, err)
				texts := []string{
					"", "the cat sat on the mat", "Hello, world!", "  two  spaces\nand a newline\n\n",
					"漢字かな交じり文、한국어", "🙂👍🏽 emoji 🇩🇪", "ünïcødé — ½ ∑",
					bos + "user: hi" + eos, "text" + eos + "more" + eos, "<not a token>",
				}
				for _, text := range texts {
					for _, flags := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
						ft, err := fv.Tokenize(text, flags[0], flags[1])
						require.NoError(t, err)
						vt, err := vv.Tokenize(text, flags[0], flags[1])
						require.NoError(t, err)
						assert.Equal(t, ft, vt, "Tokenize(%q, %v, %v)", text, flags[0], flags[1])
					}
					toks, err := vv.Tokenize(text, false, false)
					require.NoError(t, err)
					back, err := vv.Detokenize(toks, false, false)
					require.NoError(t, err)
					assert.Equal(t, text, back, "round trip of %q via %v", text, toks)
					fback, err := fv.Detokenize(toks, false, false)
					require.NoError(t, err)
					assert.Equal(t, fback, back)
				}
				// parseSpecial turns the EOS string into its one token.
				parsed, err := vv.Tokenize(eos, false, true)
				require.NoError(t, err)
				assert.Equal(t, []llama.Token{vv.EOS()}, parsed)
				toks, err := vv.Tokenize("hi", true, false)
				require.NoError(t, err)
				if vv.AddBOS() {
					assert.Equal(t, vv.BOS(), toks[0])
				}
				// The streaming decoder gives what the full model's does.
				toks, err = vv.Tokenize("a漢🙂b"+eos, false, true)
				require.NoError(t, err)
				for _, special := range []bool{false, true} {
					fd, vd := fv.NewDecoder(special), vv.NewDecoder(special)
					var fout, vout string
					for _, tok := range toks {
						s, err := fd.Add(tok)
						require.NoError(t, err)
						fout += s
						s, err = vd.Add(tok)
						require.NoError(t, err)
						vout += s
					}
					fout += fd.Flush()
					vout += vd.Flush()
					assert.Equal(t, fout, vout)
					assert.Contains(t, vout, "a漢🙂b")
				}
			})

			t.Run("NeedsWeights", func(t *testing.T) {
				x, err := voc.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
				require.Error(t, err)
				assert.Nil(t, x)
				assert.ErrorIs(t, err, llama.ErrVocabOnly)
				assert.Contains(t, err.Error(), "without VocabOnly")
				// The binding refuses too, for callers that reach the native model (this module's packages).
				err = llamaaccess.ModelNative(voc, func(c *vlm.LlamaModel) error {
					assert.True(t, c.VocabOnly())
					assert.Zero(t, c.NHead())
					assert.Zero(t, c.NHeadKV())
					assert.Zero(t, c.NLayer())
					_, err := vlm.NewContext(c, vlm.ContextParams{NCtx: 64, Threads: 1})
					return err
				})
				assert.ErrorIs(t, err, llama.ErrVocabOnly)
				// The full model still makes a context.
				fx, err := full.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
				require.NoError(t, err)
				require.NoError(t, fx.Close())
			})

			t.Run("BatchesAndRefs", func(t *testing.T) {
				// A token batch needs only the vocabulary size.
				b, err := voc.NewBatch(8, 1)
				require.NoError(t, err)
				require.NoError(t, b.Add(voc.Vocab().EOS(), 0, true))
				assert.Equal(t, 1, b.Len())
				require.NoError(t, b.Close())
				require.NoError(t, llamaaccess.Acquire(voc))
				llamaaccess.Release(voc)
			})
		})
	}
}

// TestVocabOnlyClose: a closed vocab-only model answers ErrClosed like any
// other, and VocabOnly still reports it as vocab-only.
func TestVocabOnlyClose(t *testing.T) {
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{VocabOnly: true})
	require.NoError(t, err)
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	_, err = m.Info()
	assert.ErrorIs(t, err, llama.ErrClosed)
	_, err = m.Metadata()
	assert.ErrorIs(t, err, llama.ErrClosed)
	_, err = m.Vocab().Tokenize("hi", false, false)
	assert.ErrorIs(t, err, llama.ErrClosed)
	_, err = m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
	assert.ErrorIs(t, err, llama.ErrClosed)
	assert.True(t, m.VocabOnly())
	assert.False(t, errors.Is(llama.ErrVocabOnly, llama.ErrClosed))
}
