package openai

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// maxRedirects bounds the redirects of one remote image.
const maxRedirects = 5

// errNotPublic: a remote image's host resolves to an address the server
// does not reach without Options.AllowPrivateAddresses.
var errNotPublic = errors.New("not a public address (set AllowPrivateAddresses to allow it)")

// allowedURL checks a remote image's URL, and each redirect's, against
// the allow-list: http or https, an allowed host.
func (h *Handler) allowedURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("image URL scheme %q: only http and https", u.Scheme)
	}
	if host := strings.ToLower(u.Hostname()); !slices.Contains(h.opts.AllowedHosts, host) {
		return fmt.Errorf("images from host %q are not allowed on this server", host)
	}
	return nil
}

// remoteClient returns the client that fetches remote images: a copy of
// Options.HTTPClient, or vlm's own (no proxy: a proxy would resolve and
// reach names on the server's behalf; the pinned dialer), with every
// redirect hop checked against the allow-list.
func (h *Handler) remoteClient() *http.Client {
	var c http.Client
	if h.opts.HTTPClient != nil {
		c = *h.opts.HTTPClient
	} else {
		d := &pinnedDialer{
			dialer:       net.Dialer{Timeout: h.opts.RemoteImageTimeout},
			lookup:       net.DefaultResolver.LookupNetIP,
			allowPrivate: h.opts.AllowPrivateAddresses,
		}
		c = http.Client{Timeout: h.opts.RemoteImageTimeout, Transport: &http.Transport{
			DialContext:            d.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    h.opts.RemoteImageTimeout,
			ResponseHeaderTimeout:  h.opts.RemoteImageTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
		}}
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if err := h.allowedURL(req.URL); err != nil {
			return fmt.Errorf("redirected: %w", err)
		}
		if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirected from https to %s", req.URL.Scheme)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &c
}

// pinnedDialer resolves a host once, refuses addresses that are not
// public unless allowPrivate, and connects to an address it checked, so
// that a second DNS answer (rebinding) cannot send the connection
// elsewhere.
type pinnedDialer struct {
	dialer       net.Dialer
	lookup       func(ctx context.Context, network, host string) ([]netip.Addr, error)
	allowPrivate bool
}

// DialContext is the transport's dial function.
func (d *pinnedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := net.LookupPort(network, portStr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = d.lookup(ctx, "ip", host); err != nil {
		return nil, err
	}
	var errs []error
	for _, ip := range ips {
		ip = ip.Unmap()
		if !d.allowPrivate && !publicAddr(ip) {
			errs = append(errs, fmt.Errorf("host %s has address %s: %w", host, ip, errNotPublic))
			continue
		}
		conn, err := d.dialer.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("host %s has no address", host)
	}
	return nil, errors.Join(errs...)
}

// reserved are ranges beyond netip's predicates that are not the public
// internet, or that embed an IPv4 address (NAT64, 6to4, Teredo) which
// could be a private one.
var reserved = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// publicAddr reports whether ip is a public unicast address.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() {
		return false
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
