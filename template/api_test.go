package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompileCachesBySource(t *testing.T) {
	src := "{{ messages | length }} cached " + t.Name()
	a, err := Compile(src)
	require.NoError(t, err)
	b, err := Compile(src)
	require.NoError(t, err)
	assert.Same(t, a, b)
	assert.Equal(t, src, a.Source())
	assert.Empty(t, a.Name())

	c, err := Compile(src + " ")
	require.NoError(t, err)
	assert.NotSame(t, a, c)
}

func TestCacheEvicts(t *testing.T) {
	c := &templateCache{m: make(map[string]*Template)}
	var first *Template
	for i := range cacheSize + 5 {
		tmpl := &Template{source: fmt.Sprint(i)}
		if i == 0 {
			first = tmpl
		}
		assert.Same(t, tmpl, c.put(fmt.Sprint(i), tmpl))
	}
	assert.Len(t, c.m, cacheSize)
	assert.Nil(t, c.get("0"))
	assert.NotNil(t, c.get(fmt.Sprint(cacheSize+4)))
	// A second put of a cached source returns the first template.
	again := &Template{}
	assert.NotSame(t, again, c.put(fmt.Sprint(cacheSize+4), again))
	_ = first
}

// TestConcurrentUse renders and compiles from many goroutines; run with
// -race.
func TestConcurrentUse(t *testing.T) {
	sources := []string{
		"{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{{ strftime_now('%Y') }}",
		"{{ bos_token }}{% for m in messages %}{{ m | tojson }}{% endfor %}",
	}
	smol, err := Builtin("smolvlm")
	require.NoError(t, err)
	msgs := []Message{User(Image(), Text("hi")), AssistantText("yo")}
	want, err := smol.Prompt(msgs, Options{AddGenerationPrompt: true})
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				tmpl, err := Compile(sources[(g+i)%len(sources)])
				if err != nil {
					errs <- err
					return
				}
				if _, err := tmpl.Render(msgs, Options{BOSToken: "<s>", Now: fixedClock}); err != nil {
					errs <- err
					return
				}
				got, err := smol.Prompt(msgs, Options{AddGenerationPrompt: true})
				if err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- fmt.Errorf("concurrent Prompt gave %q, want %q", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNoTemplate(t *testing.T) {
	for _, f := range []func() (*Template, error){
		func() (*Template, error) { return Compile("") },
		func() (*Template, error) { return Compile(" \n") },
		func() (*Template, error) { return Parse("") },
		func() (*Template, error) { return Resolve("", "") },
		func() (*Template, error) { return Resolve(" ", "\n") },
	} {
		tmpl, err := f()
		assert.Nil(t, tmpl)
		assert.ErrorIs(t, err, ErrNoTemplate)
	}
}

func TestResolveAndParse(t *testing.T) {
	embedded := "{{ 'embedded' }}"
	tmpl, err := Resolve("", embedded)
	require.NoError(t, err)
	assert.Equal(t, embedded, tmpl.Source())

	// A named template wins over the embedded one.
	tmpl, err = Resolve("chatml", embedded)
	require.NoError(t, err)
	assert.Equal(t, "chatml", tmpl.Name())

	tmpl, err = Resolve("{{ 'mine' }}", embedded)
	require.NoError(t, err)
	out, err := tmpl.Render(nil, Options{})
	require.NoError(t, err)
	assert.Equal(t, "mine", out)

	for _, name := range []string{"Gemma3", "qwen2.5-vl", "idefics3", "llava"} {
		tmpl, err := Parse(name)
		require.NoError(t, err, name)
		assert.Contains(t, BuiltinNames(), tmpl.Name())
	}

	_, err = Parse("no-such-template")
	require.ErrorIs(t, err, ErrUnknownTemplate)
	assert.Contains(t, err.Error(), "chatml")
	_, err = Builtin("{{ x }}")
	require.ErrorIs(t, err, ErrUnknownTemplate)
	_, err = Resolve("nope", embedded)
	require.ErrorIs(t, err, ErrUnknownTemplate)
}

func TestErrors(t *testing.T) {
	t.Run("compile error", func(t *testing.T) {
		_, err := Compile("{% for m in messages %}no end")
		var ce *CompileError
		require.ErrorAs(t, err, &ce)
		assert.NotNil(t, errors.Unwrap(err))
	})
	t.Run("render error", func(t *testing.T) {
		tmpl, err := Compile("{{ messages | no_such_filter }}")
		require.NoError(t, err)
		_, err = tmpl.Render(nil, Options{})
		var re *RenderError
		require.ErrorAs(t, err, &re)
		var raise *RaiseError
		assert.False(t, errors.As(err, &raise))
	})
	t.Run("engine panic becomes an error", func(t *testing.T) {
		// The pinned engine panics on a negative indent width.
		tmpl, err := Compile("{{ 'a'|indent(-5) }}")
		require.NoError(t, err)
		_, err = tmpl.Render(nil, Options{})
		var re *RenderError
		require.ErrorAs(t, err, &re)
		assert.Contains(t, err.Error(), "panicked")
	})
	t.Run("raise_exception with a non-string message", func(t *testing.T) {
		tmpl, err := Compile("{{ raise_exception(5) }}")
		require.NoError(t, err)
		_, err = tmpl.Render(nil, Options{})
		var raise *RaiseError
		require.ErrorAs(t, err, &raise)
		assert.Equal(t, "5", raise.Message)
	})
	t.Run("raise_exception without a message", func(t *testing.T) {
		tmpl, err := Compile("{{ raise_exception() }}")
		require.NoError(t, err)
		_, err = tmpl.Render(nil, Options{})
		var re *RenderError
		require.ErrorAs(t, err, &re)
		assert.Contains(t, err.Error(), "missing 1 required positional argument")
	})
	t.Run("range beyond the sandbox limit", func(t *testing.T) {
		for _, src := range []string{"{{ range(100001) | length }}", "{{ range(0, 200001, 2) | length }}", "{% for i in range(10000000000) %}{% endfor %}"} {
			tmpl, err := Compile(src)
			require.NoError(t, err)
			_, err = tmpl.Render(nil, Options{})
			var re *RenderError
			require.ErrorAs(t, err, &re, src)
			assert.Contains(t, err.Error(), "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).")
		}
	})
	t.Run("message with both parts and string", func(t *testing.T) {
		tmpl, err := Builtin("chatml")
		require.NoError(t, err)
		_, err = tmpl.Render([]Message{{Role: "user", Content: []Part{Image()}, Text: "x"}}, Options{})
		require.ErrorIs(t, err, ErrInvalidMessage)
		_, err = tmpl.Prompt([]Message{{Role: "user", Content: []Part{Image()}, Text: "x"}}, Options{})
		require.ErrorIs(t, err, ErrInvalidMessage)
	})
	t.Run("vars may not set messages", func(t *testing.T) {
		tmpl, err := Builtin("chatml")
		require.NoError(t, err)
		for _, k := range []string{"messages", "add_generation_prompt"} {
			_, err = tmpl.Render(nil, Options{Vars: map[string]any{k: true}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), k)
		}
	})
	t.Run("unsupported var", func(t *testing.T) {
		tmpl, err := Builtin("chatml")
		require.NoError(t, err)
		_, err = tmpl.Render(nil, Options{Vars: map[string]any{"f": func() {}}})
		require.Error(t, err)
		_, err = tmpl.Render(nil, Options{Vars: map[string]any{"bad": json.RawMessage(`{"a":`)}})
		require.Error(t, err)
		_, err = tmpl.Render([]Message{{Role: "user", Extra: Map{{"k", map[int]int{1: 1}}}}}, Options{})
		require.ErrorIs(t, err, ErrInvalidMessage)
	})
}

type toolParams struct {
	Zeta  string   `json:"zeta"`
	Alpha []int    `json:"alpha"`
	Skip  string   `json:"-"`
	Opt   *float64 `json:"opt,omitempty"`
}

func TestVarsConversion(t *testing.T) {
	tmpl, err := Compile("{{ v | tojson }}|{{ v }}")
	require.NoError(t, err)
	half := 0.5
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, "null|None"},
		{"ints", []any{int8(-1), uint16(2), int64(3), uint(4)}, "[-1, 2, 3, 4]|[-1, 2, 3, 4]"},
		{"float32", float32(0.5), "0.5|0.5"},
		{"strings", []string{"a", "é"}, `["a", "é"]|['a', 'é']`},
		{"go map sorted", map[string]any{"b": 1, "a": true}, `{"a": true, "b": 1}|{'a': True, 'b': 1}`},
		{"typed go map sorted", map[string]int{"b": 1, "a": 2}, `{"a": 2, "b": 1}|{'a': 2, 'b': 1}`},
		{"Map ordered", Map{{"b", 1}, {"a", Map{{"y", nil}, {"x", "1"}}}}, `{"b": 1, "a": {"y": null, "x": "1"}}|{'b': 1, 'a': {'y': None, 'x': '1'}}`},
		{"raw JSON ordered", json.RawMessage(`{"b": 1, "a": [1.5, 2, "s"]}`), `{"b": 1, "a": [1.5, 2, "s"]}|{'b': 1, 'a': [1.5, 2, 's']}`},
		{"struct in field order", toolParams{Zeta: "z", Alpha: []int{1}, Skip: "x", Opt: &half}, `{"zeta": "z", "alpha": [1], "opt": 0.5}|{'zeta': 'z', 'alpha': [1], 'opt': 0.5}`},
		{"struct pointer", &toolParams{Zeta: "z"}, `{"zeta": "z", "alpha": null}|{'zeta': 'z', 'alpha': None}`},
		{"nil slice", []string(nil), "null|None"},
		{"message", Message{Role: "user", Text: "hi", Extra: Map{{"name", "bob"}}}, `{"role": "user", "content": "hi", "name": "bob"}|{'role': 'user', 'content': 'hi', 'name': 'bob'}`},
		{"part with extra", Part{Type: "video", Extra: Map{{"url", "v.mp4"}}}, `{"type": "video", "url": "v.mp4"}|{'type': 'video', 'url': 'v.mp4'}`},
		{"json number", json.Number("12"), "12|12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tmpl.Render(nil, Options{Vars: map[string]any{"v": tc.v}})
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestMessageHelpers(t *testing.T) {
	m := User(Image(), Text("a"), Image())
	assert.False(t, m.IsString())
	assert.Equal(t, 2, m.Images())
	assert.True(t, UserText("x").IsString())
	assert.False(t, User().IsString(), "User() with no parts is an empty parts list, not a string")
	assert.Equal(t, 3, CountImages([]Message{m, SystemText("s"), Assistant(Image())}))
	assert.Equal(t, Message{Role: "system", Content: []Part{{Type: "text", Text: "s"}}}, System(Text("s")))
	assert.Equal(t, Message{Role: "assistant", Text: "a"}, AssistantText("a"))

	tmpl, err := Compile("{{ messages | tojson }}")
	require.NoError(t, err)
	got, err := tmpl.Render([]Message{User(), SystemText("")}, Options{})
	require.NoError(t, err)
	assert.Equal(t, `[{"role": "user", "content": []}, {"role": "system", "content": ""}]`, got)
}

func TestOptionsVariables(t *testing.T) {
	tmpl, err := Compile("{{ bos_token is defined }}{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ extra }}|{{ strftime_now('%H:%M') }}")
	require.NoError(t, err)
	got, err := tmpl.Render(nil, Options{BOSToken: "<s>", EOSToken: "</s>", AddGenerationPrompt: true,
		Vars: map[string]any{"extra": "x"}, Now: func() time.Time { return time.Date(2020, 2, 3, 13, 45, 0, 0, time.UTC) }})
	require.NoError(t, err)
	assert.Equal(t, "True<s>|</s>|True|x|13:45", got)

	// Vars override the tokens: an empty bos_token can be defined there.
	got, err = tmpl.Render(nil, Options{BOSToken: "<s>", Vars: map[string]any{"bos_token": "", "extra": 1}, Now: fixedClock})
	require.NoError(t, err)
	assert.Equal(t, "True||False|1|00:00", got)

	// Without a clock, strftime_now reads the real one.
	tmpl, err = Compile("{{ strftime_now('%Y') }}")
	require.NoError(t, err)
	before := time.Now().Year()
	got, err = tmpl.Render(nil, Options{})
	require.NoError(t, err)
	assert.Contains(t, []string{fmt.Sprint(before), fmt.Sprint(time.Now().Year())}, got)
}

func TestStrftime(t *testing.T) {
	// Expected strings from Python's datetime.strftime (glibc, C locale).
	d := time.Date(2024, 12, 30, 13, 5, 9, 0, time.UTC)
	tests := map[string]string{
		"%a %A %b %B %c":                      "Mon Monday Dec December Mon Dec 30 13:05:09 2024",
		"%C %d %D %e %F %G %g %h %H %I %j":    "20 30 12/30/24 30 2024-12-30 2025 25 Dec 13 01 365",
		"%m %M %p %r %R %S %T %u %U %V %w %W": "12 05 PM 01:05:09 PM 13:05 09 13:05:09 1 52 01 1 53",
		"%x %X %y %Y %%":                      "12/30/24 13:05:09 24 2024 %",
		"%-d %-m %-H %-j %-I":                 "30 12 13 365 1",
		"%z|%Z|%q|%E|%":                       "||%q|%E|%",
	}
	for f, want := range tests {
		assert.Equal(t, want, Strftime(d, f), f)
	}
	jan := corpusDate
	assert.Equal(t, "Thu Thursday Jan January Thu Jan 15 00:00:00 2026", Strftime(jan, "%a %A %b %B %c"))
	assert.Equal(t, " 5", Strftime(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), "%e"))
}

func TestPyFloat(t *testing.T) {
	tests := map[float64]string{
		1: "1.0", 0.1: "0.1", 1e-5: "1e-05", 1e16: "1e+16", 2.5e-7: "2.5e-07", 1e15: "1000000000000000.0",
		123456789: "123456789.0", 12345678901234567: "1.2345678901234568e+16", 1.5e300: "1.5e+300", -2.5: "-2.5",
		0.0001: "0.0001", 123.456: "123.456",
	}
	for f, want := range tests {
		assert.Equal(t, want, pyFloat(f), "%v", f)
	}
}

func TestPrepareSource(t *testing.T) {
	p := ")|" + printFilter + " "
	tests := []struct{ in, want string }{
		{"a\n", "a"},
		{"a\r\n", "a"},
		{"{{ 'x\\\ny' }}", "{{ ( 'xy' " + p + "}}"},
		{"text 'a\\\nb' {{ x }}", "text 'a\\\nb' {{ ( x " + p + "}}"}, // not in a tag: untouched
		{"{# 'a\\\nb' #}", "{# 'a\\\nb' #}"},
		{"{%- raw -%}{{ 'a\\\nb' | tojson }}{% endraw %}{{- y|tojson -}}", "{%- raw -%}{{ 'a\\\nb' | tojson }}{% endraw %}{{- ( y|" + tojsonFilter + " " + p + "-}}"},
		{"{% set x = y | tojson(indent=2) %}{% if tojson %}{{ 'tojson' }}{% endif %}", "{% set x = y | " + tojsonFilter + "(indent=2) %}{% if tojson %}{{ ( 'tojson' " + p + "}}{% endif %}"},
		{"{% set x = a|trim ~ b|string + c|upper %}", "{% set x = a|" + trimFilter + " ~ b|" + stringFilter + " + c|upper %}"},
		{"{% set x = 1e-5 + 1_000 + 2.5E3 + x1e5 %}", "{% set x = 1.0e-5 + 1000 + 2.5E3 + x1e5 %}"},
		{"{%+ if x +%}{%- endif -%}", "{% if x %}{%- endif -%}"},
		{"{{}}{{ }}{{-}}", "{{}}{{ }}{{-}}"},
		{"{{ '\\x'}}", "{{ ( '\\x'" + p + "}}"},
		{"{{ dict(a=1, b = x == 2) }}{{ d.dict(a=1) }}{{ dict(y) }}", "{{ ( {'a': (1), 'b': ( x == 2)} " + p + "}}{{ ( d.dict(a=1) " + p + "}}{{ ( dict(y) " + p + "}}"},
		{"{% set x = {'a': {'b': 1}}%}", "{% set x = {'a': {'b': 1} }%}"},
		{"{{ x[ }}", "{{ x[ }}"},
		{"{{ 'unclosed", "{{ 'unclosed"},
		{"{% if", "{% if"},
		{"{", "{"},
		{"{{ a }", "{{ a }"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, prepare(tc.in), "%q", tc.in)
	}
}

// TestBuiltinsMatchFamilies renders the corpus conversations with the
// built-in templates and expects what the families' own templates give.
func TestBuiltinsMatchFamilies(t *testing.T) {
	_, cases := loadCorpus(t)
	byFamily := map[string]string{"smolvlm": "smolvlm", "qwen2-vl": "qwen2-vl", "gemma-3": "gemma-3", "llava-1-5": "llava-1.5"}
	n := 0
	for _, c := range cases {
		name, ok := byFamily[c.Family]
		if !ok {
			continue
		}
		n++
		t.Run(c.name(), func(t *testing.T) {
			tmpl, err := Builtin(name)
			require.NoError(t, err)
			assert.Equal(t, familyPlaceholders[c.Family].style, tmpl.Style())
			var msgs []Message
			for _, raw := range c.Messages {
				msgs = append(msgs, messageFromJSON(t, raw))
			}
			got, err := tmpl.Render(msgs, caseOptions(t, c))
			if c.ExpectedError != nil {
				var raise *RaiseError
				require.ErrorAs(t, err, &raise)
				assert.Equal(t, *c.ExpectedError, raise.Message)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, *c.Expected, got)
		})
	}
	assert.Positive(t, n)
}

func TestBuiltinStringContent(t *testing.T) {
	msgs := []Message{SystemText("Be brief."), UserText("Hi"), AssistantText("Hello."), User(Image(), Text("This?"))}
	tests := map[string]string{
		"chatml":    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n<__media__>This?<|im_end|>\n<|im_start|>assistant\n",
		"smolvlm":   "<|im_start|>System: Be brief.<end_of_utterance>\nUser: Hi<end_of_utterance>\nAssistant: Hello.<end_of_utterance>\nUser:<__media__>This?<end_of_utterance>\nAssistant:",
		"qwen2-vl":  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n<__media__>This?<|im_end|>\n<|im_start|>assistant\n",
		"gemma-3":   "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\n<__media__>This?<end_of_turn>\n<start_of_turn>model\n",
		"llava-1.5": "Be brief. USER: Hi ASSISTANT: Hello. USER: <__media__>\nThis? ASSISTANT:",
	}
	require.ElementsMatch(t, BuiltinNames(), keys(tests))
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			tmpl, err := Builtin(name)
			require.NoError(t, err)
			got, err := tmpl.Prompt(msgs, Options{AddGenerationPrompt: true, BOSToken: "<bos>"})
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFindCorpusEnv(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cases.json"), []byte("[]"), 0o644))
	t.Setenv(corpusEnv, dir)
	got, why := findCorpus()
	assert.Equal(t, dir, got, why)

	t.Setenv(corpusEnv, filepath.Join(dir, "missing"))
	got, why = findCorpus()
	assert.Empty(t, got)
	assert.Contains(t, why, corpusEnv)
}
