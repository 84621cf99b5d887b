package lru

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCache(t *testing.T) {
	c := New[string, int](10)
	assert.Zero(t, c.Put("a", 1, 4))
	assert.Zero(t, c.Put("b", 2, 4))
	v, ok := c.Get("a") // a is now the most recently used
	assert.True(t, ok)
	assert.Equal(t, 1, v)
	assert.Equal(t, 1, c.Put("c", 3, 4), "b is dropped")
	assert.True(t, c.Contains("a"))
	assert.False(t, c.Contains("b"))
	assert.True(t, c.Contains("c"))
	assert.EqualValues(t, 8, c.Bytes())
	assert.Equal(t, 2, c.Len())

	assert.Zero(t, c.Put("a", 10, 2), "replacing frees the old size")
	v, _ = c.Get("a")
	assert.Equal(t, 10, v)
	assert.EqualValues(t, 6, c.Bytes())

	assert.Zero(t, c.Put("big", 4, 11), "larger than the bound: not kept")
	assert.False(t, c.Contains("big"))
	_, ok = c.Get("none")
	assert.False(t, ok)

	c.Clear()
	assert.Zero(t, c.Len())
	assert.Zero(t, c.Bytes())
	assert.EqualValues(t, 10, c.Max())
}
