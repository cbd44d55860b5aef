// Package listen decides which addresses a component may listen on. Until
// its traffic is encrypted and authenticated, a listener is loopback only:
// another address needs the operator's explicit --insecure, and the
// component then logs a warning at every start.
//
//	if err := listen.Check("--listen", cfg.Listen, cfg.Insecure); err != nil {
//		return err
//	}
package listen

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrNotLoopback is matched by the errors of Check.
var ErrNotLoopback = errors.New("listener beyond loopback without TLS")

// Loopback reports whether addr ("host:port") only accepts connections
// from this host: its host is a loopback IP or "localhost". An empty host
// (":7400") listens on every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Check refuses a listen address beyond loopback unless insecure is set.
// flag names the setting in the error, e.g. "--listen". An empty addr
// (listener off) passes.
func Check(flag, addr string, insecure bool) error {
	if addr == "" || insecure || Loopback(addr) {
		return nil
	}
	return fmt.Errorf("%w: %s %s accepts plain-text connections from other hosts; listen on 127.0.0.1, or pass --insecure on a network you trust", ErrNotLoopback, flag, addr)
}
