package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echo is a TCP server on 127.0.0.1 that writes back every line.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 64)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func newTCP(t *testing.T, target string) *TCP {
	t.Helper()
	p, err := NewTCP(target, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip writes a line and reads it back within 5 s.
func roundTrip(c net.Conn, r *bufio.Reader, line string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo mismatch: " + got)
	}
	return nil
}

// dialRoundTrip connects and does one round trip; the connection may fail
// at either step.
func dialRoundTrip(addr, line string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, bufio.NewReader(c), line)
}

func TestTCPForwards(t *testing.T) {
	p := newTCP(t, echo(t))
	c, r := dial(t, p.Addr())
	for _, s := range []string{"a", "bb", "ccc"} {
		if err := roundTrip(c, r, s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTCPDelay(t *testing.T) {
	p := newTCP(t, echo(t))
	p.SetDelay(100 * time.Millisecond)
	c, r := dial(t, p.Addr())
	start := time.Now()
	if err := roundTrip(c, r, "x"); err != nil {
		t.Fatal(err)
	}
	// one delay each way
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("round trip took %v, want at least 200ms", d)
	}
	p.SetDelay(0)
	if err := roundTrip(c, r, "y"); err != nil {
		t.Fatal(err)
	}
}

// TestTCPBlackhole: nothing flows while blackholed, open connections and
// new ones alike; after Heal the held bytes arrive, in order.
func TestTCPBlackhole(t *testing.T) {
	p := newTCP(t, echo(t))
	c, r := dial(t, p.Addr())
	if err := roundTrip(c, r, "before"); err != nil {
		t.Fatal(err)
	}
	p.Partition(Blackhole)
	if p.Mode() != Blackhole || p.Faults() != 1 {
		t.Fatalf("mode %v faults %d", p.Mode(), p.Faults())
	}
	c2, r2 := dial(t, p.Addr()) // accepted, but held
	for _, cc := range []net.Conn{c, c2} {
		if _, err := io.WriteString(cc, "held\n"); err != nil {
			t.Fatal(err)
		}
	}
	for _, rr := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{c, r}, {c2, r2}} {
		_ = rr.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if line, err := rr.r.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read through a blackhole: %q, %v", line, err)
		}
	}
	p.Heal()
	for _, rr := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{c, r}, {c2, r2}} {
		_ = rr.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := rr.r.ReadString('\n'); err != nil || line != "held\n" {
			t.Fatalf("after Heal: %q, %v", line, err)
		}
		if err := roundTrip(rr.c, rr.r, "after"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTCPRefuse: open connections are reset, new ones are closed at once;
// after Heal new connections work.
func TestTCPRefuse(t *testing.T) {
	p := newTCP(t, echo(t))
	c, r := dial(t, p.Addr())
	if err := roundTrip(c, r, "x"); err != nil {
		t.Fatal(err)
	}
	p.Partition(Refuse)
	if err := roundTrip(c, r, "y"); err == nil {
		t.Fatal("an open connection survived Refuse")
	}
	if err := dialRoundTrip(p.Addr(), "z"); err == nil {
		t.Fatal("a new connection worked under Refuse")
	}
	p.Heal()
	c3, r3 := dial(t, p.Addr())
	if err := roundTrip(c3, r3, "healed"); err != nil {
		t.Fatal(err)
	}
}

func TestTCPCut(t *testing.T) {
	p := newTCP(t, echo(t))
	c, r := dial(t, p.Addr())
	if err := roundTrip(c, r, "x"); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := roundTrip(c, r, "y"); err == nil {
		t.Fatal("a connection survived Cut")
	}
	c2, r2 := dial(t, p.Addr())
	if err := roundTrip(c2, r2, "z"); err != nil {
		t.Fatal(err)
	}
}

// TestTCPUnreachableTarget: a client of a proxy whose target is down sees
// its connection closed, as it would see a refused one.
func TestTCPUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newTCP(t, addr)
	if err := dialRoundTrip(p.Addr(), "x"); err == nil {
		t.Fatal("round trip to a closed port worked")
	}
}

// TestTCPCloseWhileBlackholed: Close returns with connections held.
func TestTCPCloseWhileBlackholed(t *testing.T) {
	p, err := NewTCP(echo(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := dial(t, p.Addr())
	p.Partition(Blackhole)
	_, _ = io.WriteString(c, "held\n")
	c2, _ := dial(t, p.Addr())
	_, _ = io.WriteString(c2, "held\n")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
