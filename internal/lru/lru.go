// Package lru is a least-recently-used map bounded by the sizes of its
// values, for vlm's caches of prepared and decoded images. It is not safe
// for concurrent use: its users hold their own lock.
package lru

import "container/list"

// Cache maps keys to values, each with a size; when the sizes add up to
// more than the bound, the least recently used entries are dropped.
type Cache[K comparable, V any] struct {
	max   int64
	bytes int64
	order *list.List // of *entry[K, V], most recently used first
	m     map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

// New returns a cache holding at most max bytes of values.
func New[K comparable, V any](max int64) *Cache[K, V] {
	return &Cache[K, V]{max: max, order: list.New(), m: map[K]*list.Element{}}
}

// Get returns the value of k and marks it most recently used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	el, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry[K, V]).val, true
}

// Contains reports whether k is held, without changing the order.
func (c *Cache[K, V]) Contains(k K) bool {
	_, ok := c.m[k]
	return ok
}

// Put adds v of the given size under k (replacing an entry of the same
// key) and drops the least recently used entries beyond the bound; it
// returns how many it dropped. A value larger than the bound is not kept.
func (c *Cache[K, V]) Put(k K, v V, size int64) (evicted int) {
	if size > c.max {
		return 0
	}
	if el, ok := c.m[k]; ok {
		c.remove(el)
	}
	c.m[k] = c.order.PushFront(&entry[K, V]{key: k, val: v, size: size})
	c.bytes += size
	for c.bytes > c.max {
		c.remove(c.order.Back())
		evicted++
	}
	return evicted
}

func (c *Cache[K, V]) remove(el *list.Element) {
	e := c.order.Remove(el).(*entry[K, V])
	delete(c.m, e.key)
	c.bytes -= e.size
}

// Len returns the number of entries.
func (c *Cache[K, V]) Len() int { return len(c.m) }

// Bytes returns the sizes of the entries together.
func (c *Cache[K, V]) Bytes() int64 { return c.bytes }

// Max returns the bound.
func (c *Cache[K, V]) Max() int64 { return c.max }

// Clear drops every entry.
func (c *Cache[K, V]) Clear() {
	c.order.Init()
	clear(c.m)
	c.bytes = 0
}
