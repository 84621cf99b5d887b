package isolate_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/template"
)

// TestHostileEmbeddedTemplates: chat templates embedded in model files
// that would overflow Go's stack (a recursive macro: fatal, not
// recoverable), loop for hours (nested range loops) or allocate gigabytes
// ('x' * 2000000000) end with template.ErrRenderLimit, at load or at the
// first answer; in the same process a good pair then answers with the same
// tokens as before.
func TestHostileEmbeddedTemplates(t *testing.T) {
	ctx := context.Background()
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	opts := pipeline.Options{Threads: 1, SequenceLength: 512}
	in := pipeline.Input{Text: "What is here?"}
	gen := pipeline.GenerateOptions{MaxTokens: 6}
	answer := func() []int32 {
		p, err := pipeline.New(ctx, mp, pp, opts)
		require.NoError(t, err)
		defer p.Close()
		r, err := p.Run(ctx, in, gen)
		require.NoError(t, err)
		out := make([]int32, len(r.Tokens))
		for i, tok := range r.Tokens {
			out[i] = int32(tok)
		}
		return out
	}
	before := answer()
	for name, src := range map[string]string{
		"recursive macro": `{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`,
		"nested loops":    `{% for i in range(100000) %}{% for j in range(100000) %}{{ messages[0]['role'] }}{% endfor %}{% endfor %}`,
		"huge repeat":     `{{ 'x' * 2000000000 }}{% for m in messages %}{{ m['role'] }}{% endfor %}`,
	} {
		bad := rewrite(t, mp, "", func(k string, v any) (string, any, bool) {
			if k == "tokenizer.chat_template" {
				return k, src, true
			}
			return k, v, true
		})
		p, err := pipeline.New(ctx, bad, pp, opts)
		if err == nil {
			_, err = p.Run(ctx, in, gen)
			p.Close()
		}
		require.Error(t, err, name)
		assert.ErrorIs(t, err, template.ErrRenderLimit, name)
		t.Logf("%s: %v", name, err)
	}
	assert.Equal(t, before, answer(), "the same answer afterwards")
}
