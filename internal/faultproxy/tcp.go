package faultproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Mode is the state of a TCP proxy's link.
type Mode int

// The modes of a TCP proxy.
const (
	// Open forwards bytes both ways.
	Open Mode = iota
	// Refuse resets every connection, open or new: the peer is down.
	Refuse
	// Blackhole accepts connections but holds every byte, both ways, until
	// the partition heals: a network that drops packets. Nothing is lost;
	// held bytes flow again on Heal, as TCP retransmission would deliver
	// them.
	Blackhole
)

func (m Mode) String() string {
	switch m {
	case Open:
		return "open"
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// TCP forwards connections from a loopback port to one target address and
// can partition (Refuse, Blackhole), delay, or cut them.
type TCP struct {
	target string
	logger *slog.Logger
	ln     net.Listener
	ctx    context.Context // cancelled by Close
	stop   context.CancelFunc
	wg     sync.WaitGroup // the accept loop and every link's goroutines

	mu    sync.Mutex
	mode  Mode
	gate  chan struct{} // closed while not blackholed
	delay time.Duration
	links map[*link]struct{}
	count int64 // partitions and cuts applied
}

// link is one proxied connection pair.
type link struct {
	client net.Conn
	mu     sync.Mutex
	server net.Conn // nil until dialled
	closed bool
}

// setServer attaches the target's connection; false if the link was
// closed meanwhile.
func (l *link) setServer(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = c
	return true
}

// close closes both connections, with a reset if asked.
func (l *link) close(reset bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for _, c := range []net.Conn{l.client, l.server} {
		if c == nil {
			continue
		}
		if reset {
			setLinger0(c)
		}
		_ = c.Close()
	}
}

func setLinger0(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// NewTCP starts a proxy to target on a free port of 127.0.0.1.
func NewTCP(target string, logger *slog.Logger) (*TCP, error) {
	return ListenTCP("127.0.0.1:0", target, logger)
}

// ListenTCP starts a proxy to target listening on addr.
func ListenTCP(addr, target string, logger *slog.Logger) (*TCP, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen %s: %w", addr, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	gate := make(chan struct{})
	close(gate)
	p := &TCP{target: target, logger: logger, ln: ln, ctx: ctx, stop: stop, gate: gate, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *TCP) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *TCP) Target() string { return p.target }

// Mode is the current mode.
func (p *TCP) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Faults is the number of partitions and cuts applied so far.
func (p *TCP) Faults() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// Partition switches to mode m: Refuse resets every open connection and
// every new one; Blackhole holds all traffic; Open is Heal.
func (p *TCP) Partition(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m == p.mode {
		return
	}
	if m != Open {
		p.count++
	}
	p.logger.Debug("partition", "target", p.target, "mode", m)
	if p.mode == Blackhole {
		close(p.gate)
	}
	if m == Blackhole {
		p.gate = make(chan struct{})
	}
	p.mode = m
	if m == Refuse {
		for l := range p.links {
			l.close(true)
		}
	}
}

// Heal forwards again; bytes held by a blackhole flow on.
func (p *TCP) Heal() { p.Partition(Open) }

// SetDelay makes every chunk of bytes wait d before it is forwarded, both
// ways.
func (p *TCP) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Cut resets the open connections; new ones are accepted as the mode says.
func (p *TCP) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	for l := range p.links {
		l.close(true)
	}
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *TCP) Close() error {
	p.stop()
	err := p.ln.Close()
	p.mu.Lock()
	for l := range p.links {
		l.close(false)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *TCP) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.logger.Debug("accept", "err", err)
			if !sleepCtx(p.ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		p.mu.Lock()
		mode := p.mode
		if mode == Refuse || p.ctx.Err() != nil {
			p.mu.Unlock()
			setLinger0(c)
			_ = c.Close()
			continue
		}
		l := &link{client: c}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// state returns the gate and delay of the moment.
func (p *TCP) state() (chan struct{}, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate, p.delay
}

// wait blocks while the proxy is blackholed, then waits the delay. It
// reports false if the proxy closed first.
func (p *TCP) wait(done <-chan struct{}) bool {
	gate, delay := p.state()
	select {
	case <-gate:
	case <-done:
		return false
	case <-p.ctx.Done():
		return false
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-done:
			return false
		case <-p.ctx.Done():
			return false
		}
	}
	return true
}

func (p *TCP) serve(l *link) {
	defer p.wg.Done()
	defer func() {
		l.close(false)
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	done := make(chan struct{}) // closed when either direction ends
	// A new connection is held by a blackhole before it reaches the target.
	if !p.wait(done) {
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.logger.Debug("dial target", "target", p.target, "err", err)
		setLinger0(l.client)
		return
	}
	if !l.setServer(server) {
		setLinger0(server)
		_ = server.Close()
		return
	}
	var once sync.Once
	end := func() { once.Do(func() { close(done) }) }
	var inner sync.WaitGroup
	inner.Add(2)
	for _, dir := range [][2]net.Conn{{server, l.client}, {l.client, server}} {
		go func() {
			defer inner.Done()
			if !p.pipe(dir[0], dir[1], done) {
				end()
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		inner.Wait()
		close(finished)
	}()
	select {
	case <-done: // one direction failed: tear both down
	case <-finished: // both sides closed their writes
	}
	l.close(false)
	<-finished
}

// pipe copies src to dst chunk by chunk, each chunk through wait. It
// reports true when src ended cleanly (EOF, passed on as a half-close),
// false on any failure.
func (p *TCP) pipe(dst, src net.Conn, done <-chan struct{}) bool {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(done) {
				return false
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return false
			}
		}
		if err != nil {
			if err != io.EOF {
				return false
			}
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return true
			}
			return false
		}
	}
}
