package openai_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
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
	s := newServer(t, pipeline.Options{}, openai.Options{RemoteImages: true, AllowedHosts: []string{host}, RemoteImageBytes: 2048, AllowPrivateAddresses: true})
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

// TestRemoteImagesRefusePrivate: an allowed host on a loopback address
// (by IP or by a name that resolves there) is refused unless
// AllowPrivateAddresses is set, and nothing is fetched.
func TestRemoteImagesRefusePrivate(t *testing.T) {
	pic := pngBytes(t)
	var hits atomic.Int32
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(pic)
	}))
	defer images.Close()
	port := must(url.Parse(images.URL)).Port()
	for _, allow := range []bool{false, true} {
		s := newServer(t, pipeline.Options{}, openai.Options{RemoteImages: true, AllowedHosts: []string{"127.0.0.1", "LocalHost"}, AllowPrivateAddresses: allow})
		for _, u := range []string{"http://127.0.0.1:" + port + "/cat.png", "http://localhost:" + port + "/cat.png"} {
			code, body := s.post(t, `{"max_tokens":3,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"`+u+`"}},{"type":"text","text":"?"}]}]}`, testKey)
			if allow {
				assert.Equal(t, 200, code, "%s allowed: %s", u, body)
			} else {
				assert.Equal(t, 400, code, "%s: %s", u, body)
				assert.Contains(t, body, "not a public address", u)
			}
		}
		if !allow {
			assert.Zero(t, hits.Load(), "no connection reached the server")
		}
	}
}

// TestRemoteImageRedirects: every redirect hop must lead to an allowed
// host; an allowed host that redirects elsewhere (an open redirect) is
// refused without the other host being asked, and so is a redirect loop.
func TestRemoteImageRedirects(t *testing.T) {
	pic := pngBytes(t)
	var outside atomic.Int32
	var images *httptest.Server
	images = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "localhost") {
			outside.Add(1)
		}
		switch r.URL.Path {
		case "/cat.png":
			w.Write(pic)
		case "/in":
			http.Redirect(w, r, "/cat.png", http.StatusFound)
		case "/out":
			http.Redirect(w, r, strings.Replace(images.URL, "127.0.0.1", "localhost", 1)+"/cat.png", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer images.Close()
	s := newServer(t, pipeline.Options{}, openai.Options{RemoteImages: true, AllowedHosts: []string{"127.0.0.1"}, AllowPrivateAddresses: true})
	ask := func(path string) (int, string) {
		return s.post(t, `{"max_tokens":3,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"`+images.URL+path+`"}},{"type":"text","text":"?"}]}]}`, testKey)
	}
	code, body := ask("/in")
	assert.Equal(t, 200, code, body)
	code, body = ask("/out")
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, `host \"localhost\" are not allowed`)
	assert.Zero(t, outside.Load(), "the other host was not asked")
	code, body = ask("/loop")
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, "redirects")

	// A client of the caller's own gets the same redirect checks.
	s = newServer(t, pipeline.Options{}, openai.Options{RemoteImages: true, AllowedHosts: []string{"127.0.0.1"}, HTTPClient: &http.Client{}})
	code, body = ask("/in")
	assert.Equal(t, 200, code, body)
	code, body = ask("/out")
	assert.Equal(t, 400, code, body)
	assert.Contains(t, body, `host \"localhost\" are not allowed`)
	assert.Zero(t, outside.Load(), "the other host was not asked")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
