package template

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzCompileRender feeds arbitrary template sources (they come from model
// files) through Compile, Render and Prompt: errors are fine, panics and
// hangs are not.
func FuzzCompileRender(f *testing.F) {
	for _, s := range []string{
		"{{ messages[0]['content'] }}",
		"{% for m in messages %}{{ m.role | upper }}{% if m.content is string %}{{ m.content }}{% endif %}{% endfor %}",
		"{{ 'a\\\nb' ~ 1e-5 }}{# c #}{% raw %}{{ x }}{% endraw %}",
		"{%- set ns = namespace(x=1) -%}{{ ns.x | tojson(indent=2) }}{{ raise_exception('no') }}",
		"{% macro m(a, b=2) %}{{ a + b }}{% endmacro %}{{ m(1) }}{{ messages[1:] | length }}",
		"{{ strftime_now('%d %b %Y') }}{% generation %}x{% endgeneration %}",
	} {
		f.Add(s)
	}
	if dir, _ := findCorpus(); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "templates", "*.jinja"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(string(b))
			}
		}
	}
	msgs := []Message{SystemText("s"), User(Image(), Text("hi <image>")), AssistantText("ok"), User(Text("more"), Image())}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			tmpl, err := compile(src, "")
			if err != nil {
				return
			}
			opts := Options{AddGenerationPrompt: true, BOSToken: "<s>", Now: fixedClock}
			_, _ = tmpl.Render(msgs, opts)
			_, _ = tmpl.Prompt(msgs, opts)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("template took over 5s: %q", src)
		}
	})
}
