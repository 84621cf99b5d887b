package pipeline

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/mtmd"
)

func encodedPicture(t *testing.T, n int, shade uint8) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for i := range img.Pix {
		img.Pix[i] = uint8(i) + shade
	}
	img.SetNRGBA(0, 0, color.NRGBA{shade, 0, 0, 255})
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// decode is the cache's use by a request of one image of bytes.
func (c *decodedCache) decode(data []byte, limits mtmd.Limits) (*mtmd.Image, error) {
	return loadOne(ImageBytes(data), limits, c)
}

// loadOne loads one image as a request with no budget does.
func loadOne(im Image, limits mtmd.Limits, cache *decodedCache) (*mtmd.Image, error) {
	imgs, err := imageLoader{limits: limits, cache: cache}.load(context.Background(), []Image{im})
	if err != nil {
		return nil, err
	}
	return imgs[0], nil
}

func TestDecodedCache(t *testing.T) {
	a, b, c := encodedPicture(t, 16, 1), encodedPicture(t, 16, 2), encodedPicture(t, 16, 3)
	cache := newDecodedCache(2 * 16 * 16 * 3) // two pictures
	ia, err := cache.decode(a, mtmd.Limits{})
	require.NoError(t, err)
	again, err := cache.decode(bytes.Clone(a), mtmd.Limits{})
	require.NoError(t, err)
	assert.Same(t, ia, again, "the same bytes are not decoded again")
	ib, err := cache.decode(b, mtmd.Limits{})
	require.NoError(t, err)
	assert.NotEqual(t, ia.ID(), ib.ID())
	_, err = cache.decode(a, mtmd.Limits{}) // a is now the most recent
	require.NoError(t, err)
	_, err = cache.decode(c, mtmd.Limits{}) // evicts b
	require.NoError(t, err)
	assert.Equal(t, 2, cache.images.Len())
	again, _ = cache.decode(a, mtmd.Limits{})
	assert.Same(t, ia, again)
	again, _ = cache.decode(b, mtmd.Limits{})
	assert.NotSame(t, ib, again, "b was evicted and decoded again")
	assert.Equal(t, ib.ID(), again.ID())

	_, err = cache.decode([]byte("not an image"), mtmd.Limits{})
	assert.Error(t, err)
	assert.Equal(t, 2, cache.images.Len(), "errors are not kept")
}

// A file whose bytes change is decoded again: the key is the content.
func TestImageFileChangedOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pic.png")
	cache := newDecodedCache(1 << 20)
	require.NoError(t, os.WriteFile(path, encodedPicture(t, 8, 1), 0o644))
	i1, err := loadOne(ImageFile(path), mtmd.Limits{}, cache)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, encodedPicture(t, 8, 9), 0o644))
	i2, err := loadOne(ImageFile(path), mtmd.Limits{}, cache)
	require.NoError(t, err)
	assert.NotEqual(t, i1.ID(), i2.ID())
	_, err = loadOne(ImageFile(path), mtmd.Limits{MaxBytes: 10}, cache)
	assert.ErrorIs(t, err, mtmd.ErrImageTooLarge)
	_, err = loadOne(ImageFile(filepath.Join(t.TempDir(), "missing.png")), mtmd.Limits{}, cache)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
