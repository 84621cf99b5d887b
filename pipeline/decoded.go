package pipeline

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vlm-go/vlm/internal/lru"
	"github.com/vlm-go/vlm/mtmd"
)

// decodedCache remembers the images decoded from encoded bytes (ImageFile,
// ImageBytes) by a hash of those bytes, so that the same picture sent again
// is not decoded again (a 512 px PNG takes ~15 ms to decode on 2 cores,
// hashing its bytes 0.3 ms). It is bounded by the decoded pixels' bytes and
// drops the least recently used image first; safe for concurrent use.
type decodedCache struct {
	mu     sync.Mutex
	images *lru.Cache[[sha256.Size]byte, *mtmd.Image]
}

func newDecodedCache(max int64) *decodedCache {
	return &decodedCache{images: lru.New[[sha256.Size]byte, *mtmd.Image](max)}
}

// get returns the image the bytes with hash key decoded to, if cached.
func (c *decodedCache) get(key [sha256.Size]byte) (*mtmd.Image, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.images.Get(key)
}

// put remembers that the bytes with hash key decoded to img. limits are
// the pipeline's (fixed), so bytes accepted once are accepted again.
func (c *decodedCache) put(key [sha256.Size]byte, img *mtmd.Image) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.images.Contains(key) {
		c.images.Put(key, img, int64(img.Width())*int64(img.Height())*3)
	}
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
