package openai_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

// TestRemoteImages: http(s) image URLs are read only when allowed, from
// allowed hosts, within the size bound; a failed fetch is a 400.
func TestRemoteImages(t *testing.T) {
	pic, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(pngDataURL(t, 32, 32, 5), "data:image/png;base64,"))
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cat.png":
			w.Write(pic)
		case "/big.png":
			w.Write(make([]byte, 4096))
		default:
			http.NotFound(w, r)
		}
	}))
	defer images.Close()
	host := must(url.Parse(images.URL)).Hostname()
	s := newServer(t, pipeline.Options{}, openai.Options{RemoteImages: true, AllowedHosts: []string{host}, RemoteImageBytes: 2048})
	ask := func(u string) (int, string) {
		return s.post(t, `{"max_tokens":3,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"`+u+`"}},{"type":"text","text":"?"}]}]}`, testKey)
	}
	code, body := ask(images.URL + "/cat.png")
	assert.Equal(t, 200, code, body)
	code, body = ask(images.URL + "/missing.png")
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, "404")
	code, body = ask(images.URL + "/big.png")
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, "larger than 2048 bytes")
	code, body = ask(strings.Replace(images.URL, host, "localhost", 1) + "/cat.png")
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, "not allowed")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
