package template

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
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

// TestRenderLimitIsWork: a long render ends at MaxRenderSteps with the
// same error whatever the machine's speed: here once at full speed and
// once on a "slow machine" whose clock advances 40 µs per step (1,000,000
// steps would take 40 s, four times the old 10 s wall-clock limit, still
// under the backstop). Deep nesting with no range() (loops over a list)
// counts its printed expressions.
func TestRenderLimitIsWork(t *testing.T) {
	src := `{% set l = [1,2,3,4,5,6,7,8,9,10] %}{% for a in l %}{% for b in l %}{% for c in l %}{% for d in l %}{% for e in l %}{% for f in l %}{% for g in l %}{{ a }}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}`
	run := func() error {
		_, err := renderSource(t, src, Options{})
		return err
	}
	fast := run()
	require.ErrorIs(t, fast, ErrRenderLimit)
	assert.Contains(t, fast.Error(), "steps")

	var mu sync.Mutex
	clock := time.Now()
	renderClock = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(40 * time.Microsecond)
		return clock
	}
	defer func() { renderClock = time.Now }()
	slow := run()
	require.ErrorIs(t, slow, ErrRenderLimit)
	assert.Equal(t, fast.Error(), slow.Error(), "the same outcome on a slow machine")

	// a bounded render of the same shape is unaffected
	renderClock = time.Now
	got, err := renderSource(t, `{% set l = [1,2,3] %}{% for a in l %}{% for b in l %}{{ a }}{{ b }}{% endfor %}{% endfor %}`, Options{})
	require.NoError(t, err)
	assert.Equal(t, "111213212223313233", got)
}
