package template

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func renderSource(t *testing.T, src string, opts Options) (string, error) {
	t.Helper()
	tmpl, err := Compile(src)
	if err != nil {
		return "", err
	}
	return tmpl.Render([]Message{UserText("hi")}, opts)
}

// TestMacrosRenderAsJinja2: counting macro calls (for the depth limit)
// leaves every macro's output as jinja2 renders it, whitespace control
// included (testdata/macros.json, written by macros_reference.py).
func TestMacrosRenderAsJinja2(t *testing.T) {
	data, err := os.ReadFile("testdata/macros.json")
	require.NoError(t, err)
	var cases []struct{ Src, Want string }
	require.NoError(t, json.Unmarshal(data, &cases))
	require.NotEmpty(t, cases)
	for _, c := range cases {
		got, err := renderSource(t, c.Src, Options{})
		require.NoError(t, err, c.Src)
		assert.Equal(t, c.Want, got, c.Src)
	}
}

// TestRenderLimits: templates from a hostile model file end with
// ErrRenderLimit instead of overflowing the stack, looping for hours or
// allocating gigabytes.
func TestRenderLimits(t *testing.T) {
	cases := map[string]string{
		"recursive macro":   `{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}`,
		"mutual recursion":  `{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}`,
		"nested ranges":     `{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}`,
		"huge printed text": `{% for i in range(100000) %}{{ "0123456789" * 1000 }}{% endfor %}`,
	}
	for name, src := range cases {
		start := time.Now()
		_, err := renderSource(t, src, Options{})
		var re *RenderError
		require.True(t, errors.As(err, &re), "%s: %v", name, err)
		assert.ErrorIs(t, err, ErrRenderLimit, name)
		assert.Less(t, time.Since(start), MaxRenderTime, name)
		t.Logf("%s: %v (%v)", name, err, time.Since(start).Round(time.Millisecond))
	}
	_, err := Compile(`{{ 'x' * 2000000000 }}`)
	var ce *CompileError
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.ErrorIs(t, err, ErrRenderLimit)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = renderSource(t, `{% for i in range(3) %}{{ i }}{% endfor %}`, Options{Context: ctx})
	assert.ErrorIs(t, err, ErrRenderLimit)
	assert.ErrorIs(t, err, context.Canceled)

	// Within the limits: a deep but bounded recursion renders.
	got, err := renderSource(t, `{% macro g(x) %}{% if x > 0 %}{{ g(x - 1) }}{% endif %}{{ x }}{% endmacro %}{{ g(40) }}`, Options{})
	require.NoError(t, err)
	assert.Contains(t, got, "3940")
}
