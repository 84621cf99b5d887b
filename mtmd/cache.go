package mtmd

import (
	"sync"

	"github.com/vlm-go/vlm/internal/lru"
)

// DefaultImageCacheBytes bounds an ImageCache made with a size ≤ 0.
const DefaultImageCacheBytes = 256 << 20

// ImageCache keeps, for each image a projector has prepared, everything
// evaluating that image needs again: its chunks (the image's tiles and the
// text tokens mtmd puts around and between them, with their token and
// position counts and M-RoPE grid) and the vision encoder's output for each
// tile. A prompt whose images are all in the cache is built without
// preprocessing (resizing, tiling) or encoding any of them; only its text is
// tokenized.
//
// Entries are keyed by the projector (each loaded Projector is its own key,
// so two projectors never share an entry, even for the same file) and the
// image's content hash (Image.ID). The cache is bounded in bytes and drops
// the least recently used image first. It is safe for concurrent use, and
// one cache may serve many projectors.
type ImageCache struct {
	mu      sync.Mutex
	entries *lru.Cache[imageKey, *imageEntry]
	stats   CacheStats
}

// CacheStats count what an ImageCache did since it was made.
type CacheStats struct {
	Hits      int64 // images found
	Misses    int64 // images looked up and not found
	Evictions int64 // images dropped to stay within the byte bound
	Entries   int   // images held now
	Bytes     int64 // bytes held now (embeddings and tokens)
	MaxBytes  int64 // the bound
}

type imageKey struct {
	proj  uint64 // Projector.id
	image string // Image.ID
}

// imageEntry is one prepared image: the chunks one marker becomes, and the
// embeddings of each image chunk (nil for text chunks). It is immutable once
// in the cache.
type imageEntry struct {
	key    imageKey
	chunks []Chunk
	embd   [][]float32
	size   int64
}

// chunkOverhead is what a chunk's bookkeeping is counted as.
const chunkOverhead = 96

func (e *imageEntry) computeSize() {
	e.size = 0
	for i, ch := range e.chunks {
		e.size += chunkOverhead + 4*int64(len(ch.Tokens)) + 4*int64(len(e.embd[i]))
	}
}

// NewImageCache returns a cache holding at most maxBytes of prepared images;
// maxBytes ≤ 0 means DefaultImageCacheBytes. An image larger than the bound
// is not kept.
func NewImageCache(maxBytes int64) *ImageCache {
	if maxBytes <= 0 {
		maxBytes = DefaultImageCacheBytes
	}
	return &ImageCache{entries: lru.New[imageKey, *imageEntry](maxBytes)}
}

// get returns the entry for k and marks it most recently used.
func (c *ImageCache) get(k imageKey) (*imageEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries.Get(k)
	if ok {
		c.stats.Hits++
	} else {
		c.stats.Misses++
	}
	return e, ok
}

// find returns the entry for k without counting a lookup.
func (c *ImageCache) find(k imageKey) (*imageEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Get(k)
}

// put adds e (replacing an entry of the same key) and evicts the least
// recently used entries beyond the bound.
func (c *ImageCache) put(e *imageEntry) {
	e.computeSize()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Evictions += int64(c.entries.Put(e.key, e, e.size))
}

// Contains reports whether the cache holds img prepared by p, without
// counting a lookup or changing the order of eviction.
func (c *ImageCache) Contains(p *Projector, img *Image) bool {
	if c == nil || p == nil || img == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Contains(imageKey{p.id, img.id})
}

// Stats returns the cache's counters.
func (c *ImageCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries, s.Bytes, s.MaxBytes = c.entries.Len(), c.entries.Bytes(), c.entries.Max()
	return s
}

// Len returns the number of images held.
func (c *ImageCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}

// Clear drops every entry (the counters stay).
func (c *ImageCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.Clear()
}
