package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// handedOut remembers the ports freePort returned lately: the kernel may
// offer a port again as soon as its probe closed, before the process it
// was meant for binds it, and a run that gets one port twice (an etcd
// cluster's peers) fails to start.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
	order []int
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago and
// that it has not returned among its last 4096 answers.
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("chaos: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if handedOut.ports[port] {
			continue
		}
		handedOut.ports[port] = true
		handedOut.order = append(handedOut.order, port)
		if len(handedOut.order) > 4096 {
			delete(handedOut.ports, handedOut.order[0])
			handedOut.order = handedOut.order[1:]
		}
		return port, nil
	}
	return 0, errors.New("chaos: free port: the kernel keeps offering ports handed out already")
}

func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

// httpOK polls url until it answers 200 with a body containing want, the
// process dies, or timeout passes.
func httpOK(ctx context.Context, p *Proc, url, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return nil
			}
			err = fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
		}
		last = err
		select {
		case <-p.Done():
			return fmt.Errorf("chaos: %s exited before it was healthy (log %s)", p.Name, p.LogPath())
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s not healthy at %s: %w (last: %v)", p.Name, url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EtcdBinary is the etcd server binary: $CLICKSTREAM_ETCD_BINARY, else etcd
// on PATH (Debian's etcd-server package installs /usr/bin/etcd).
func EtcdBinary() (string, error) {
	if v := os.Getenv("CLICKSTREAM_ETCD_BINARY"); v != "" {
		return v, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("chaos: etcd server binary not found (apt-get install etcd-server, or set CLICKSTREAM_ETCD_BINARY): %w", err)
	}
	return p, nil
}

// Etcd is an etcd cluster of the harness's own: members on free loopback
// ports with their data in a temp dir, each a process the harness may
// kill, stop and restart.
type Etcd struct {
	Members []*EtcdMember
}

// EtcdMember is one member of an Etcd cluster.
type EtcdMember struct {
	Name      string
	ClientURL string // http://127.0.0.1:port
	Proc      *Proc
}

// ClientAddr is the member's client host:port.
func (m *EtcdMember) ClientAddr() string { return strings.TrimPrefix(m.ClientURL, "http://") }

// StartEtcd starts an n-member cluster and waits until every member is
// healthy.
func StartEtcd(ctx context.Context, sup *Supervisor, dir string, n int) (*Etcd, error) {
	bin, err := EtcdBinary()
	if err != nil {
		return nil, err
	}
	type ports struct{ client, peer int }
	ps := make([]ports, n)
	var initial []string
	for i := range ps {
		if ps[i].client, err = freePort(); err != nil {
			return nil, err
		}
		if ps[i].peer, err = freePort(); err != nil {
			return nil, err
		}
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ps[i].peer))
	}
	token := "chaos-" + filepath.Base(dir)
	e := &Etcd{}
	// etcd reads ETCD_* variables as flags; childEnv passes none.
	env := childEnv()
	if a := os.Getenv("ETCD_UNSUPPORTED_ARCH"); a != "" {
		env = append(env, "ETCD_UNSUPPORTED_ARCH="+a)
	}
	for i, p := range ps {
		name := fmt.Sprintf("m%d", i)
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, fmt.Errorf("chaos: etcd dir: %w", err)
		}
		client := fmt.Sprintf("http://127.0.0.1:%d", p.client)
		peer := fmt.Sprintf("http://127.0.0.1:%d", p.peer)
		proc, err := sup.Start("etcd-"+filepath.Base(dir)+"-"+name, bin, env,
			"--name", name, "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--logger", "zap", "--log-level", "warn")
		if err != nil {
			return nil, err
		}
		e.Members = append(e.Members, &EtcdMember{Name: name, ClientURL: client, Proc: proc})
	}
	for _, m := range e.Members {
		if err := m.WaitHealthy(ctx); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Endpoints are the client URLs of every member, comma-separated.
func (e *Etcd) Endpoints() string {
	var s []string
	for _, m := range e.Members {
		s = append(s, m.ClientURL)
	}
	return strings.Join(s, ",")
}

// WaitHealthy waits until the member answers /health with a quorum.
func (m *EtcdMember) WaitHealthy(ctx context.Context) error {
	return httpOK(ctx, m.Proc, m.ClientURL+"/health", `"health":"true"`, 60*time.Second)
}

// Restart kills the member if it runs and starts it again on its data.
func (m *EtcdMember) Restart(ctx context.Context) error {
	if err := m.Proc.Restart(); err != nil {
		return err
	}
	return m.WaitHealthy(ctx)
}

// VersitygwBinary is versitygw as deploy/local/stack.sh installs it:
// $CLICKSTREAM_VERSITYGW, else $CLICKSTREAM_CACHE/bin/versitygw (default
// ~/.cache/clickstream), else versitygw on PATH.
func VersitygwBinary() (string, error) {
	if v := os.Getenv("CLICKSTREAM_VERSITYGW"); v != "" {
		return v, nil
	}
	cache := os.Getenv("CLICKSTREAM_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err == nil {
			cache = filepath.Join(home, ".cache", "clickstream")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", errors.New("chaos: versitygw not found: run `make dev-up` (deploy/local/stack.sh installs it in ~/.cache/clickstream/bin) or set CLICKSTREAM_VERSITYGW")
	}
	return p, nil
}

// S3 is a versitygw of the harness's own, serving a temp dir on a free
// port, with the credentials of the environment.
type S3 struct {
	URL  string // http://127.0.0.1:port
	Proc *Proc
}

// StartS3 starts versitygw (posix backend) on dir.
func StartS3(ctx context.Context, sup *Supervisor, dir string, creds Credentials) (*S3, error) {
	bin, err := VersitygwBinary()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: s3 dir: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	proc, err := sup.Start("versitygw-"+filepath.Base(dir), bin, childEnv(),
		"--access", creds.AccessKey, "--secret", creds.SecretKey, "--region", creds.Region,
		"--port", addr, "--health", "/_health", "--keep-alive", "--quiet", "posix", dir)
	if err != nil {
		return nil, err
	}
	s := &S3{URL: "http://" + addr, Proc: proc}
	return s, s.WaitHealthy(ctx)
}

// WaitHealthy waits until versitygw answers its health check.
func (s *S3) WaitHealthy(ctx context.Context) error {
	return httpOK(ctx, s.Proc, s.URL+"/_health", "", 30*time.Second)
}

// Restart kills versitygw and starts it again on the same dir and port.
func (s *S3) Restart(ctx context.Context) error {
	if err := s.Proc.Restart(); err != nil {
		return err
	}
	return s.WaitHealthy(ctx)
}

// Credentials are the S3 credentials the harness's versitygw accepts and
// every process uses.
type Credentials struct {
	AccessKey, SecretKey, Region string
}

// CredentialsFromEnv reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_REGION (as the stack's env file sets them).
func CredentialsFromEnv() (Credentials, error) {
	c := Credentials{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Region: os.Getenv("AWS_REGION")}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return c, errors.New("chaos: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are empty: source the stack's env file (make dev-up)")
	}
	return c, nil
}

// Env are the variables that give a child the S3 endpoint and
// credentials.
func (c Credentials) Env(endpoint string) []string {
	return []string{"AWS_ACCESS_KEY_ID=" + c.AccessKey, "AWS_SECRET_ACCESS_KEY=" + c.SecretKey,
		"AWS_REGION=" + c.Region, "CLICKSTREAM_S3_ENDPOINT=" + endpoint}
}
