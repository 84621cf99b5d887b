package main

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// refusal is what a connection beyond the limit reads before it is closed.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 32\r\n\r\ntoo many connections; retry soon"

// connLimiter is a listener that holds at most max connections open: one
// more is answered 503 and closed at once (a client learns at once, and
// the refused connection costs one short write), instead of waiting in
// the kernel's queue as with a listener that stops accepting.
type connLimiter struct {
	net.Listener
	max      int64
	open     atomic.Int64
	refusing atomic.Int64 // refusals being written
	refused  prometheus.Counter
}

// maxRefusing bounds the refusals written at once; beyond, a connection
// is closed without a word.
const maxRefusing = 64

// limitListener wraps ln; its gauge and counter go to reg.
func limitListener(ln net.Listener, limit int, reg prometheus.Registerer) net.Listener {
	l := &connLimiter{Listener: ln, max: int64(limit)}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vlm_http_connections_refused_total", Help: "Connections refused because -max-connections were open.",
	})
	reg.MustRegister(l.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vlm_http_connections_open", Help: "Open client connections.",
	}, func() float64 { return float64(l.open.Load()) }))
	return l
}

// Accept returns the next connection within the limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Inc()
		if l.refusing.Add(1) > maxRefusing {
			l.refusing.Add(-1)
			c.Close()
			continue
		}
		go func() {
			defer l.refusing.Add(-1)
			refuse(c)
		}()
	}
}

// refuse answers 503 and closes c, giving the write one second.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(refusal))
	if tc, ok := c.(*net.TCPConn); ok {
		// Closing with unread request bytes would reset the connection
		// before the client reads the 503: close the sending side first
		// and give the client a moment.
		_ = tc.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var buf [512]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				break
			}
		}
	}
	_ = c.Close()
}

// limitedConn gives its place back once, when closed.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

// CloseWrite closes the sending side, as the http.Server does before
// closing a connection whose request it did not read to the end.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Close closes the connection and frees its place.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
