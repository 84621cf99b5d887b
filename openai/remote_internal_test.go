package openai

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPublicAddr: what remote images may reach without
// AllowPrivateAddresses.
func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700:4700::1111": true, "93.184.215.14": true,
		"127.0.0.1": false, "127.8.9.10": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, // cloud metadata
		"100.64.0.1":      false, "0.0.0.0": false, "0.1.2.3": false, "224.0.0.1": false, "255.255.255.255": false,
		"198.18.0.1": false, "240.0.0.1": false, "192.0.2.1": false,
		"::1": false, "::": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "fe80::1": false, "fc00::1": false,
		"fd12::1": false, "ff02::1": false, "64:ff9b::a00:1": false, "2002:a00:1::": false, "2001:db8::1": false,
		"fe80::1%eth0": false,
	} {
		assert.Equal(t, public, publicAddr(netip.MustParseAddr(addr)), addr)
	}
}

// TestPinnedDialer: a host name is resolved once per connection, the
// connection goes to the address that was checked (the name resolves
// nowhere else), and a non-public answer is refused before any
// connection unless private addresses are allowed.
func TestPinnedDialer(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	port := must(url.Parse(srv.URL)).Port()
	for _, allow := range []bool{true, false} {
		var lookups atomic.Int32
		d := &pinnedDialer{allowPrivate: allow, lookup: func(ctx context.Context, network, host string) ([]netip.Addr, error) {
			lookups.Add(1)
			if host != "images.test" {
				return nil, fmt.Errorf("unexpected lookup of %q", host)
			}
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}}
		c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
		resp, err := c.Get("http://images.test:" + port + "/x")
		if allow {
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
			assert.EqualValues(t, 1, hits.Load())
		} else {
			require.ErrorIs(t, err, errNotPublic)
			assert.EqualValues(t, 1, hits.Load(), "no new connection")
		}
		assert.EqualValues(t, 1, lookups.Load(), "resolved once")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
