package metering

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postage/internal/db"
	"postage/internal/testenv"
)

// stallProxy forwards TCP connections to addr until stall is set; then it
// stops reading what clients send (keeping the connections open), as a
// hung server or a black-holed link would.
type stallProxy struct {
	ln    net.Listener
	stall atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
}

func newStallProxy(t *testing.T, addr string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go io.Copy(c, s)
			go func() {
				buf := make([]byte, 64<<10)
				for {
					for p.stall.Load() {
						time.Sleep(10 * time.Millisecond)
					}
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := s.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestInsertDoesNotHangOnAStalledServer checks that an insert sent in
// several blocks fails within its bounds when ClickHouse stops reading in
// the middle: the driver sends the blocks before the last without the
// context's deadline, and a write that waited for TCP to give up would stop
// every later flush for many minutes. It must fail, not hang (the flush
// then answers 503 and the senders retry).
func TestInsertDoesNotHangOnAStalledServer(t *testing.T) {
	testenv.SingleServerOnly(t, "a proxy stalls the socket to one server: the bound is the connection's write timeout, whatever is behind it")
	env := testenv.New(t)
	ctx := context.Background()
	p := newStallProxy(t, env.CHAddr)
	conn, err := db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: p.ln.Addr().String(), Database: env.CHDatabase, WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := NewCHStore(conn)
	// Enough bytes to fill the loopback socket buffers (several MB) well
	// before the last block.
	t0 := time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC)
	pad := strings.Repeat("x", 200)
	evs := make([]Event, 30*insertBlockRows)
	for i := range evs {
		evs[i] = ev("cust-1", fmt.Sprintf("evt-%d-%s", i, pad), t0, "DE", "marketing", 1)
		evs[i].IngestedAt = t0
	}
	if err := s.Insert(ctx, evs[:10]); err != nil {
		t.Fatalf("insert through the proxy before the stall: %v", err)
	}
	p.stall.Store(true)
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Insert(ictx, evs) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("insert into a server that stopped reading succeeded")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("insert still blocked a minute after the server stopped reading")
	}
}
