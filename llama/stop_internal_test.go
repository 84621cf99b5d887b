package llama

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStopMatcher(t *testing.T) {
	cases := []struct {
		stops  []string
		pieces []string
		want   string
		hit    bool
	}{
		{nil, []string{"ab", "cd"}, "abcd", false},
		{[]string{"STOP"}, []string{"hello S", "TO", "P world"}, "hello ", true},
		{[]string{"STOP"}, []string{"hello S", "TOX"}, "hello STOX", false},
		{[]string{"\n\n", "END"}, []string{"a\n", "b", "E", "N", "D"}, "a\nb", true},
		{[]string{"xyz"}, []string{"x", "x", "y"}, "x", false}, // "xy" held back
		{[]string{""}, []string{"a"}, "a", false},
	}
	for _, c := range cases {
		m := newStopMatcher(c.stops)
		out, hit := "", false
		for _, p := range c.pieces {
			var o string
			o, hit = m.add(p)
			out += o
			if hit {
				break
			}
		}
		assert.Equal(t, c.want, out, "%v %v", c.stops, c.pieces)
		assert.Equal(t, c.hit, hit)
	}
	m := newStopMatcher([]string{"xyz"})
	out, _ := m.add("abxy")
	assert.Equal(t, "ab", out)
	assert.Equal(t, "xy", m.flush())
}
