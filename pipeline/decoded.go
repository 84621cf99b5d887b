package pipeline

import (
	"container/list"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vlm-go/vlm/mtmd"
)

// decodedCache remembers the images decoded from encoded bytes (ImageFile,
// ImageBytes) by a hash of those bytes, so that the same picture sent again
// is not decoded again (a 512 px PNG takes ~15 ms to decode on 2 cores,
// hashing its bytes 0.3 ms). It is bounded by the decoded pixels' bytes and
// drops the least recently used image first; safe for concurrent use.
type decodedCache struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	lru   *list.List // of *decodedEntry, most recent first
	m     map[[sha256.Size]byte]*list.Element
}

type decodedEntry struct {
	key [sha256.Size]byte
	img *mtmd.Image
}

func newDecodedCache(max int64) *decodedCache {
	return &decodedCache{max: max, lru: list.New(), m: map[[sha256.Size]byte]*list.Element{}}
}

func imageBytes(img *mtmd.Image) int64 { return int64(img.Width()) * int64(img.Height()) * 3 }

// decode returns the image data decodes to, from the cache when the same
// bytes were decoded before. limits are the pipeline's (fixed), so bytes
// accepted once are accepted again.
func (c *decodedCache) decode(data []byte, limits mtmd.Limits) (*mtmd.Image, error) {
	if c == nil {
		return mtmd.DecodeImageBytes(data, limits)
	}
	key := sha256.Sum256(data)
	c.mu.Lock()
	if el, ok := c.m[key]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*decodedEntry).img, nil
	}
	c.mu.Unlock()
	img, err := mtmd.DecodeImageBytes(data, limits)
	if err != nil {
		return nil, err
	}
	n := imageBytes(img)
	if n > c.max {
		return img, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok {
		c.m[key] = c.lru.PushFront(&decodedEntry{key: key, img: img})
		c.bytes += n
		for c.bytes > c.max {
			e := c.lru.Remove(c.lru.Back()).(*decodedEntry)
			delete(c.m, e.key)
			c.bytes -= imageBytes(e.img)
		}
	}
	return img, nil
}

// readImageFile reads an encoded image file, at most limits' bytes.
func readImageFile(path string, limits mtmd.Limits) ([]byte, error) {
	max := limits.MaxBytes
	if max <= 0 {
		max = mtmd.DefaultMaxBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading image: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: image data over %d bytes: %w", path, max, mtmd.ErrImageTooLarge)
	}
	return data, nil
}
