package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// cli runs `clickstream args...` to its end and returns its combined
// output and exit code.
func cli(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if exit := (*exec.ExitError)(nil); err != nil && !errors.As(err, &exit) {
		t.Fatalf("clickstream %s: %v", args[0], err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// certFiles names the files `clickstream certs --dir dir` writes for an
// identity.
func certFiles(dir string, role mtls.Role, name string) mtls.Files {
	base := filepath.Join(dir, string(role)+"-"+name)
	return mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: base + ".pem", Key: base + "-key.pem"}
}

// tlsArgs are the --tls-* flags of f.
func tlsArgs(f mtls.Files) []string {
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}
}

// makeCerts runs `clickstream certs --dir dir` with the default
// identities: coordinator local, workers worker-1 and worker-2, operator
// local, viewer local.
func makeCerts(t *testing.T, dir string) string {
	t.Helper()
	out, code := cli(t, nil, "certs", "--dir", dir)
	if code != 0 {
		t.Fatalf("clickstream certs exited %d:\n%s", code, out)
	}
	return out
}

// tlsClient is a client of the coordinators with f's identity.
func (c *testCluster) tlsClient(addr string, f mtls.Files) *coordinator.Client {
	c.t.Helper()
	src, err := mtls.Load(f)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.client(addr, coordinator.WithTLS(src))
}

// tlsCluster is a coordinator and two workers with certificates made by
// `clickstream certs` in dir.
type tlsCluster struct {
	*testCluster
	certs            string // the certificates' directory
	addr             string // the coordinator's
	ui               string // the coordinator's HTTP listener
	coord            *proc
	operator, viewer *coordinator.Client
}

func newTLSCluster(t *testing.T) *tlsCluster {
	c := &tlsCluster{testCluster: newCluster(t)}
	c.certs = filepath.Join(c.dir, "certs")
	makeCerts(t, c.certs)
	c.ui = freeAddr(t)
	c.coord, c.addr = c.coordinator(append(tlsArgs(certFiles(c.certs, mtls.RoleCoordinator, "local")), "--http-listen", c.ui)...)
	for _, id := range []string{"worker-1", "worker-2"} {
		c.worker(id, tlsArgs(certFiles(c.certs, mtls.RoleWorker, id))...)
	}
	c.operator = c.tlsClient(c.addr, certFiles(c.certs, mtls.RoleOperator, "local"))
	c.viewer = c.tlsClient(c.addr, certFiles(c.certs, mtls.RoleViewer, "local"))
	c.ready(c.viewer)
	c.waitWorkers(2)
	return c
}

// TestMTLS runs a cluster whose every connection is mutual TLS, with the
// certificates of `clickstream certs`: a job submitted by the operator
// gets the fault-free result; clients without a certificate of the
// cluster CA, or with an expired one, are refused as unauthenticated, a
// viewer may read but not submit or cancel; a worker whose certificate is
// not a worker's, or names another id, refuses to start; a registration
// pointing at an address that serves another identity gets no task; and
// certificates renewed by running `clickstream certs` again are served on
// the next connection.
func TestMTLS(t *testing.T) {
	c := newTLSCluster(t)
	var jobID string

	t.Run("job", func(t *testing.T) {
		cl := c.in(t)
		out := filepath.Join(c.dir, "out-job")
		submit := cl.start("submit", append([]string{"submit", "--coordinator", c.addr, "--from", from.Format(time.RFC3339),
			"--to", to.Format(time.RFC3339), "--out", "file://" + out, "--wait"}, tlsArgs(certFiles(c.certs, mtls.RoleOperator, "local"))...)...)
		submit.succeeds(t, 90*time.Second)
		jobs, err := c.viewer.List(context.Background(), 10)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("list: %d jobs, %v", len(jobs), err)
		}
		jobID = jobs[0].GetId()
		cl.checkResult(cl.wait(c.viewer, jobID), "file://"+out)
		// The viewer reads with the CLI too.
		for _, args := range [][]string{{"status"}, {"status", jobID}} {
			out, code := cli(t, nil, append(append(args, "--coordinator", c.addr), tlsArgs(certFiles(c.certs, mtls.RoleViewer, "local"))...)...)
			if code != 0 || !strings.Contains(out, jobID) || !strings.Contains(out, "succeeded") {
				t.Errorf("clickstream %s as the viewer exited %d:\n%s", strings.Join(args, " "), code, out)
			}
		}
	})
	if jobID == "" {
		t.FailNow()
	}

	t.Run("refusals", func(t *testing.T) {
		c.refusals(t, jobID)
	})

	t.Run("web UI", func(t *testing.T) {
		c.webUI(t, jobID)
	})

	t.Run("worker certificates", func(t *testing.T) {
		cl := c.in(t)
		for _, tc := range []struct {
			name, id string
			cert     mtls.Files
			want     string
		}{
			{"the viewer's certificate", "viewer-as-worker", certFiles(c.certs, mtls.RoleViewer, "local"),
				"the certificate names spiffe://clickstream/viewer/local; a worker needs role worker"},
			{"another worker's certificate", "worker-9", certFiles(c.certs, mtls.RoleWorker, "worker-1"),
				`--id "worker-9" differs from the certificate's identity spiffe://clickstream/worker/worker-1`},
		} {
			w := cl.worker(tc.id, tlsArgs(tc.cert)...)
			select {
			case <-w.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("a worker with %s is still running", tc.name)
			}
			if code := w.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(w.output(), tc.want) {
				t.Errorf("a worker with %s exited %d, want an error saying %q:\n%s", tc.name, code, tc.want, w.output())
			}
		}
	})

	t.Run("forged registration", func(t *testing.T) {
		c.forgedRegistration(t)
	})

	t.Run("rotation", func(t *testing.T) {
		c.rotation(t)
	})
}

// refusals: who may call what, and what the refused are told.
func (c *tlsCluster) refusals(t *testing.T, jobID string) {
	ca := certFiles(c.certs, mtls.RoleOperator, "local").CA
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(ca)
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("read %s: %v", ca, err)
	}
	// A certificate of another CA: a second `clickstream certs` directory.
	other := filepath.Join(t.TempDir(), "other")
	makeCerts(t, other)
	foreign := certFiles(other, mtls.RoleOperator, "local")
	foreign.CA = ca // it trusts the cluster's coordinator, so that the coordinator is the one to refuse
	// An expired certificate of the cluster CA.
	expired := writeExpired(t, c.certs)

	// A client that trusts the cluster CA and checks the host name, as any
	// TLS client does, but has no certificate of its own.
	anonymous := credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	withFiles := func(f mtls.Files) credentials.TransportCredentials {
		src, err := mtls.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		return mtls.ClientCredentials(src, mtls.ExpectRole(mtls.RoleCoordinator))
	}
	viewer := withFiles(certFiles(c.certs, mtls.RoleViewer, "local"))
	for _, tc := range []struct {
		name   string
		creds  credentials.TransportCredentials
		method string
		code   codes.Code
		msg    string
	}{
		{"no certificate", anonymous, "submit", codes.Unauthenticated,
			"SubmitJob: no client certificate: want a certificate of role operator (URI SAN spiffe://clickstream/<role>/<name>) signed by the cluster CA"},
		{"no certificate reads", anonymous, "list", codes.Unauthenticated, "ListJobs: no client certificate: want a certificate of role viewer or operator"},
		{"another CA", withFiles(foreign), "submit", codes.Unauthenticated,
			"SubmitJob: client certificate refused: certificate not trusted: x509: certificate signed by unknown authority"},
		{"expired", withFiles(expired), "submit", codes.Unauthenticated, "SubmitJob: client certificate refused: certificate not trusted: x509: certificate has expired"},
		{"expired reads", withFiles(expired), "get", codes.Unauthenticated, "certificate has expired"},
		{"viewer submits", viewer, "submit", codes.PermissionDenied, "SubmitJob: spiffe://clickstream/viewer/local may not call it: it needs role operator"},
		{"viewer cancels", viewer, "cancel", codes.PermissionDenied, "CancelJob: spiffe://clickstream/viewer/local may not call it: it needs role operator"},
		{"viewer gets", viewer, "get", codes.OK, ""},
		{"viewer lists", viewer, "list", codes.OK, ""},
		{"viewer watches", viewer, "watch", codes.OK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := callCoordinator(t, c.addr, tc.creds, tc.method, jobID, c.outURI())
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v saying %q", err, tc.code, tc.msg)
			}
		})
	}

	// The CLI says the same; a plain-text client is told the coordinator
	// speaks TLS.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"viewer submits", append([]string{"submit", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--out", c.outURI()},
			tlsArgs(certFiles(c.certs, mtls.RoleViewer, "local"))...), "may not call it: it needs role operator"},
		{"viewer cancels", append([]string{"cancel", jobID}, tlsArgs(certFiles(c.certs, mtls.RoleViewer, "local"))...), "may not call it: it needs role operator"},
		{"plain text", []string{"status"}, "does the coordinator require mutual TLS? give the client a certificate with --tls-ca"},
		{"another CA", append([]string{"status"}, tlsArgs(certFiles(other, mtls.RoleViewer, "local"))...), "certificate not trusted"},
	} {
		t.Run("cli "+tc.name, func(t *testing.T) {
			out, code := cli(t, nil, append(tc.args, "--coordinator", c.addr)...)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 1 and a message saying %q:\n%s", code, tc.want, out)
			}
		})
	}
	// Nothing refused changed the job.
	j, err := c.viewer.Get(context.Background(), jobID)
	if err != nil || j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s after the refusals: %v, %v", jobID, j.GetState(), err)
	}
	if jobs, err := c.viewer.List(context.Background(), 10); err != nil || len(jobs) != 1 {
		t.Fatalf("%d jobs after refused submits (err %v), want 1", len(jobs), err)
	}
}

// writeExpired writes an operator certificate of the CA in dir that
// expired an hour ago, and returns its files.
func writeExpired(t *testing.T, dir string) mtls.Files {
	t.Helper()
	certPEM, err1 := os.ReadFile(filepath.Join(dir, "ca.pem"))
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	ca, err := pki.LoadCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert, err := ca.Issue(pki.Request{URI: "spiffe://clickstream/operator/expired", NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	f := mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(out, "expired.pem"), Key: filepath.Join(out, "expired-key.pem")}
	if err := os.WriteFile(f.Cert, cert.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, cert.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// callCoordinator makes one call of the API over a new connection.
func callCoordinator(t *testing.T, addr string, creds credentials.TransportCredentials, method, jobID, out string) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	api := pb.NewCoordinatorServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch method {
	case "submit":
		_, err = api.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: &pb.JobSpec{From: timestamppb.New(from), To: timestamppb.New(to), OutUri: out}, IdempotencyKey: coordinator.NewIdempotencyKey()})
	case "cancel":
		_, err = api.CancelJob(ctx, &pb.CancelJobRequest{Id: jobID})
	case "get":
		_, err = api.GetJob(ctx, &pb.GetJobRequest{Id: jobID})
	case "list":
		_, err = api.ListJobs(ctx, &pb.ListJobsRequest{Limit: 1})
	case "watch":
		var stream grpc.ServerStreamingClient[pb.WatchJobResponse]
		if stream, err = api.WatchJob(ctx, &pb.WatchJobRequest{Id: jobID}); err == nil {
			_, err = stream.Recv() // a finished job: its status, then the end
		}
	default:
		t.Fatalf("no method %q", method)
	}
	return err
}

// impostor is a gRPC server of WorkerService presenting a certificate of
// the cluster CA that is not the worker's its registration names. It
// counts the connections it accepts and the tasks it is sent.
type impostor struct {
	addr  string
	conns atomic.Int32
	tasks atomic.Int32
	pb.UnimplementedWorkerServiceServer
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func (im *impostor) RunTask(context.Context, *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	im.tasks.Add(1)
	return nil, status.Error(codes.Internal, "an impostor never runs a task")
}

func startImpostor(t *testing.T, cert mtls.Files) *impostor {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	im := &impostor{addr: lis.Addr().String()}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})
	srv := grpc.NewServer(grpc.Creds(creds))
	pb.RegisterWorkerServiceServer(srv, im)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(countingListener{lis, &im.conns})
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return im
}

// forgedRegistration writes registrations that anyone allowed to write
// worker registrations in etcd could write: new ids with plenty of room,
// one at the address of worker-2 (whose certificate names worker-2), one
// at a server presenting the viewer's certificate. The coordinator checks
// each address's identity before it gives it a task: the job runs on the
// real workers only, and its result is the fault-free one.
func (c *tlsCluster) forgedRegistration(t *testing.T) {
	cl := c.in(t)
	etcd, err := cluster.Dial(context.Background(), cluster.ParseEndpoints(c.etcd), c.auth)
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	keys := cluster.Keys{Prefix: c.prefix}
	resp, err := etcd.Get(context.Background(), keys.Worker("worker-2"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("worker-2's registration: %v", err)
	}
	var real cluster.WorkerInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &real); err != nil {
		t.Fatal(err)
	}
	im := startImpostor(t, certFiles(c.certs, mtls.RoleViewer, "local"))
	forged := map[string]string{"forged-at-worker-2": real.Addr, "forged-at-impostor": im.addr}
	for id, addr := range forged {
		info, _ := json.Marshal(cluster.WorkerInfo{ID: id, Addr: addr, Parallelism: 64, Started: time.Now().UTC()})
		if _, err := etcd.Put(context.Background(), keys.Worker(id), string(info)); err != nil {
			t.Fatal(err)
		}
	}
	// The coordinator says so, for each.
	for id, addr := range forged {
		waitLog(t, c.coord, 30*time.Second, "worker gets no task: its address does not prove its identity", "worker="+id, "addr="+addr)
	}
	waitLog(t, c.coord, time.Second, "want spiffe://clickstream/worker/forged-at-worker-2", "the server is spiffe://clickstream/worker/worker-2")
	waitLog(t, c.coord, time.Second, "want spiffe://clickstream/worker/forged-at-impostor", "the server is spiffe://clickstream/viewer/local")

	// Every attempt of the job, as the leader records it in etcd.
	start, err := etcd.Get(context.Background(), keys.AllLeases(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		mu       sync.Mutex
		attempts = map[string]int{} // worker id → attempts
		// Once the watch delivers a put of marker made after the job, it
		// has delivered every attempt of the job.
		marker = keys.AllLeases() + "~end-of-test"
	)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for wr := range etcd.Watch(wctx, keys.AllLeases(), clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1)) {
			for _, ev := range wr.Events {
				var rec struct {
					Worker string `json:"worker"`
				}
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if string(ev.Kv.Key) == marker {
					rec.Worker = marker
				} else if err := json.Unmarshal(ev.Kv.Value, &rec); err != nil {
					rec.Worker = "malformed: " + err.Error()
				}
				mu.Lock()
				attempts[rec.Worker]++
				mu.Unlock()
			}
		}
	}()
	out := "file://" + filepath.Join(c.dir, "out-forged")
	j := cl.wait(c.viewer, cl.submit(c.operator, cl.spec(out)).GetId())
	cl.checkResult(j, out)
	if _, err := etcd.Put(context.Background(), marker, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		end := attempts[marker] > 0
		mu.Unlock()
		if end || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-watched
	if _, err := etcd.Delete(context.Background(), marker); err != nil {
		t.Fatal(err)
	}
	delete(attempts, marker)
	var total int
	for w, n := range attempts {
		total += n
		if w != "worker-1" && w != "worker-2" {
			t.Errorf("%d attempts on %s", n, w)
		}
	}
	if total < int(j.GetProgress().GetTasksTotal()) {
		t.Errorf("watched %d attempts (%v), want at least the job's %d tasks", total, attempts, j.GetProgress().GetTasksTotal())
	}
	if n := im.tasks.Load(); n != 0 {
		t.Errorf("the impostor was sent %d tasks", n)
	}
	if im.conns.Load() == 0 {
		t.Errorf("the coordinator never checked the impostor's address")
	}
	// worker-2 ran no more tasks of the job than the attempts recorded for
	// it: none came through the registration forged at its address.
	for _, p := range c.owner.procs {
		if id, ok := strings.CutPrefix(p.name, "worker "); ok {
			if n := strings.Count(p.output(), `msg="task done" worker=`+id+" job="+j.GetId()+" "); n > attempts[id] {
				t.Errorf("%s ran %d tasks of the job, but %d attempts were recorded for it", id, n, attempts[id])
			}
		}
	}
	for id := range forged {
		if _, err := etcd.Delete(context.Background(), keys.Worker(id)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitLog waits until p's output has a line holding every one of parts.
func waitLog(t *testing.T, p *proc, timeout time.Duration, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for line := range strings.Lines(p.output()) {
			if !slices.ContainsFunc(parts, func(s string) bool { return !strings.Contains(line, s) }) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged a line with %q", p.name, parts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rotation renews every certificate with `clickstream certs` (same CA)
// while the cluster runs: the next connection to the coordinator, or to a
// worker, gets the renewed certificate, and clients with renewed
// certificates are served.
func (c *tlsCluster) rotation(t *testing.T) {
	cl := c.in(t)
	coordCert := certFiles(c.certs, mtls.RoleCoordinator, "local")
	workerCert := certFiles(c.certs, mtls.RoleWorker, "worker-1")
	etcd, err := cluster.Dial(context.Background(), cluster.ParseEndpoints(c.etcd), c.auth)
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	resp, err := etcd.Get(context.Background(), cluster.Keys{Prefix: c.prefix}.Worker("worker-1"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("worker-1's registration: %v", err)
	}
	var w1 cluster.WorkerInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &w1); err != nil {
		t.Fatal(err)
	}
	operator := certFiles(c.certs, mtls.RoleOperator, "local")
	served := func(addr string) []byte {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(operator.Cert, operator.Key)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	onFile := func(f mtls.Files) []byte {
		t.Helper()
		data, err := os.ReadFile(f.Cert)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(data)
		if b == nil {
			t.Fatalf("%s: no PEM", f.Cert)
		}
		return b.Bytes
	}
	oldCoord, oldWorker := onFile(coordCert), onFile(workerCert)
	if !bytes.Equal(served(c.addr), oldCoord) || !bytes.Equal(served(w1.Addr), oldWorker) {
		t.Fatal("before the rotation, the servers do not serve their files' certificates")
	}
	if out := makeCerts(t, c.certs); !strings.Contains(out, "reusing CA") {
		t.Fatalf("certs made a new CA:\n%s", out)
	}
	newCoord, newWorker := onFile(coordCert), onFile(workerCert)
	if bytes.Equal(newCoord, oldCoord) || bytes.Equal(newWorker, oldWorker) {
		t.Fatal("clickstream certs did not renew the certificates")
	}
	if !bytes.Equal(served(c.addr), newCoord) {
		t.Error("the coordinator serves its old certificate on a new connection")
	}
	if !bytes.Equal(served(w1.Addr), newWorker) {
		t.Error("worker-1 serves its old certificate on a new connection")
	}
	// A new client with the renewed operator certificate, and the client
	// connected before the rotation, are both served.
	for name, client := range map[string]*coordinator.Client{"new": cl.tlsClient(c.addr, operator), "connected before": c.operator} {
		if _, err := client.List(context.Background(), 1); err != nil {
			t.Errorf("%s client: %v", name, err)
		}
	}
}

// webUI: the coordinator's HTTP listener is HTTPS with its certificate;
// its UI answers a viewer's certificate and an operator's, refuses a
// worker's (403) and a client without one (401), whose probes /healthz
// and /readyz still pass.
func (c *tlsCluster) webUI(t *testing.T, jobID string) {
	ca := certFiles(c.certs, mtls.RoleViewer, "local").CA
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(ca)
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("read %s: %v", ca, err)
	}
	client := func(f *mtls.Files) *http.Client {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if f != nil {
			cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	viewer, operator := certFiles(c.certs, mtls.RoleViewer, "local"), certFiles(c.certs, mtls.RoleOperator, "local")
	worker := certFiles(c.certs, mtls.RoleWorker, "worker-1")
	for _, tc := range []struct {
		name string
		cert *mtls.Files
		path string
		want int
		body string
	}{
		{"viewer", &viewer, "/api/jobs", http.StatusOK, jobID},
		{"viewer, the job's page", &viewer, "/jobs/" + jobID, http.StatusOK, "succeeded"},
		{"operator", &operator, "/", http.StatusOK, jobID},
		{"worker", &worker, "/", http.StatusForbidden, "needs role viewer, operator or coordinator"},
		{"no certificate", nil, "/api/jobs", http.StatusUnauthorized, "no client certificate"},
		{"probe", nil, "/readyz", http.StatusOK, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client(tc.cert).Get("https://" + c.ui + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.body) {
				t.Errorf("GET %s: %d, want %d with %q:\n%s", tc.path, resp.StatusCode, tc.want, tc.body, body)
			}
		})
	}
}
