package obs_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/obs"
	"github.com/dataco/clickstream/internal/pki"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServesMetricsAndHealth(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "clickstream_test_things_total", Help: "things"})
	reg.MustRegister(c)
	c.Add(3)
	srv, err := obs.Start("", false, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if host, _, _ := net.SplitHostPort(srv.Addr()); host != "127.0.0.1" {
		t.Errorf("default address %s is not loopback", srv.Addr())
	}
	code, body := get(t, "http://"+srv.Addr()+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "clickstream_test_things_total 3") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body := get(t, "http://"+srv.Addr()+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

func TestCloseWaits(t *testing.T) {
	srv, err := obs.Start("127.0.0.1:0", false, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	// Once Close returned the listener is gone: the port is free again.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("address %s still in use after Close: %v", addr, err)
	}
	ln.Close()
}

func TestBadAddress(t *testing.T) {
	for _, addr := range []string{"not an address", "127.0.0.1:99999"} {
		if srv, err := obs.Start(addr, false, prometheus.NewRegistry(), nil); err == nil {
			srv.Close()
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
	// A taken port is an error too.
	srv, err := obs.Start("", false, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if s2, err := obs.Start(srv.Addr(), false, prometheus.NewRegistry(), nil); err == nil {
		s2.Close()
		t.Errorf("Start on the taken %s succeeded", srv.Addr())
	}
}

// TestPprofBehindFlag: profiles are served only with the flag, and only
// on a loopback listener (which addresses are loopback: internal/listen).
func TestPprofBehindFlag(t *testing.T) {
	for _, profiles := range []bool{false, true} {
		srv, err := obs.Start("127.0.0.1:0", profiles, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusNotFound
		if profiles {
			want = http.StatusOK
		}
		if code, _ := get(t, "http://"+srv.Addr()+"/debug/pprof/"); code != want {
			t.Errorf("pprof %v: status %d, want %d", profiles, code, want)
		}
		srv.Close()
	}
	if _, err := obs.Start("0.0.0.0:0", true, prometheus.NewRegistry(), nil); !errors.Is(err, obs.ErrPprof) {
		t.Fatalf("profiles beyond loopback: %v", err)
	}
}

// TestStartWith: handlers mounted beside the server's own, over HTTPS;
// the server's paths keep precedence over a catch-all.
func TestStartWith(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	src, err := mtls.Issue(ca, mtls.Identity{Role: mtls.RoleCoordinator, Name: "c1"}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := obs.StartWith("127.0.0.1:0", false, prometheus.NewRegistry(), nil, obs.Options{
		TLS: mtls.ServerTLSConfig(src),
		Mount: func(mux *http.ServeMux) {
			mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ui\n") })
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for path, want := range map[string]string{"/": "ui\n", "/jobs/x": "ui\n", "/healthz": "ok\n", "/readyz": "ok\n"} {
		resp, err := client.Get("https://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("GET %s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
	// A plain-text request to the TLS listener is refused (400 from
	// net/http), never served.
	if resp, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain text served over the TLS listener")
		}
	}
}
