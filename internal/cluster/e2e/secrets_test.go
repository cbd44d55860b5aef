package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/dataco/clickstream/proto/clickstream/v1"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/mtls"
)

// TestSecretsNeverPrinted runs a job through every credential the
// cluster can be given — etcd users with passwords (from a file and from
// the environment), Elasticsearch basic authentication, the S3 secret key
// of the output store, the private keys of mutual TLS — with every process
// logging at debug level, plus the refusals that might echo one (a worker
// with a wrong etcd password); then no process's output, nor any command's
// (etcd-auth, certs, submit, status, top), holds any of the secrets.
func TestSecretsNeverPrinted(t *testing.T) {
	c := newCluster(t)
	es := os.Getenv("CLICKSTREAM_ES_URL")
	awsSecret := os.Getenv("AWS_SECRET_ACCESS_KEY")
	if es == "" || awsSecret == "" {
		t.Fatal("CLICKSTREAM_ES_URL or AWS_SECRET_ACCESS_KEY is empty: run `make dev-up` and source its env, or use -short")
	}
	out := laketest.NewS3(t).URI()
	e := clustertest.StartAuthEtcd(t, c.prefix)
	c.etcd, c.auth = e.Endpoint, e.Root()
	esPassword, wrongPassword := "es-pw-"+randHex(8), "wrong-pw-"+randHex(8)
	alias := "e2e-secrets-" + randHex(4)
	t.Cleanup(func() {
		if req, err := http.NewRequest(http.MethodDelete, es+"/"+alias+"-*", nil); err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	var outputs []string // of the commands run to their end
	run := func(env []string, args ...string) string {
		t.Helper()
		o, code := cli(t, append([]string{"CLICKSTREAM_LOG_LEVEL=debug"}, env...), args...)
		if code != 0 {
			t.Fatalf("clickstream %s exited %d:\n%s", args[0], code, o)
		}
		outputs = append(outputs, o)
		return o
	}

	certs := filepath.Join(c.dir, "certs")
	run(nil, "certs", "--dir", certs, "--worker", "worker-1", "--worker", "worker-2", "--worker", "worker-3")
	// Authentication is on already: etcd-auth logs in as root and sets the
	// passwords again, from files.
	run(nil, "etcd-auth", "--etcd", e.Endpoint, "--etcd-prefix", c.prefix,
		"--root-user", e.Users.Root, "--root-password-file", clustertest.PasswordFile(t, e.Users.RootPW),
		"--coordinator-user", e.Users.Coordinator, "--coordinator-password-file", clustertest.PasswordFile(t, e.Users.CoordinatorPW),
		"--worker-user", e.Users.Worker, "--worker-password-file", clustertest.PasswordFile(t, e.Users.WorkerPW))

	debug := []string{"CLICKSTREAM_LOG_LEVEL=debug"}
	_, addr := c.coordinatorEnv(append(debug, "CLICKSTREAM_ES_PASSWORD="+esPassword),
		append(tlsArgs(certFiles(certs, mtls.RoleCoordinator, "local")),
			"--etcd-user", e.Users.Coordinator, "--etcd-password-file", clustertest.PasswordFile(t, e.Users.CoordinatorPW),
			"--es", es, "--es-index", alias, "--es-username", "clickstream")...)
	c.workerEnv("worker-1", append(debug, cluster.EnvEtcdPassword+"="+e.Users.WorkerPW),
		append(tlsArgs(certFiles(certs, mtls.RoleWorker, "worker-1")), "--etcd-user", e.Users.Worker, "--output-root", out)...)
	c.workerEnv("worker-2", debug,
		append(tlsArgs(certFiles(certs, mtls.RoleWorker, "worker-2")), "--etcd-user", e.Users.Worker,
			"--etcd-password-file", clustertest.PasswordFile(t, e.Users.WorkerPW), "--output-root", out)...)
	refused := c.workerEnv("worker-3", append(debug, cluster.EnvEtcdPassword+"="+wrongPassword),
		append(tlsArgs(certFiles(certs, mtls.RoleWorker, "worker-3")), "--etcd-user", e.Users.Worker, "--output-root", out)...)
	select {
	case <-refused.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a worker with a wrong etcd password is still running")
	}
	if !strings.Contains(refused.output(), "refused the credentials") {
		t.Errorf("a worker with a wrong etcd password:\n%s", refused.output())
	}

	viewer := c.tlsClient(addr, certFiles(certs, mtls.RoleViewer, "local"))
	c.ready(viewer)
	c.waitWorkers(2)
	o := run(debug, append([]string{"submit", "--coordinator", addr, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--out", out, "--wait"}, tlsArgs(certFiles(certs, mtls.RoleOperator, "local"))...)...)
	jobs, err := viewer.List(context.Background(), 1)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("list: %v\n%s", err, o)
	}
	id := jobs[0].GetId()
	c.checkResult(c.wait(viewer, id), out)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// The publications: the lake's Iceberg table, then the index.
		j, err := viewer.Get(context.Background(), id)
		if p := j.GetPublications(); err == nil && len(p) == 2 && !slices.ContainsFunc(p, func(p *pb.Publication) bool { return p.GetStatus() == "pending" }) {
			for _, p := range p {
				if p.GetStatus() != "ok" {
					t.Fatalf("publication %s: %s", p.GetPublisher(), p.GetStatus())
				}
			}
			if p[1].GetPublisher() != "elasticsearch" {
				t.Fatalf("publications %v: want the index last", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the result is not indexed: %v, %v", j.GetPublications(), err)
		}
	}
	run(debug, append([]string{"status", "--coordinator", addr, id}, tlsArgs(certFiles(certs, mtls.RoleViewer, "local"))...)...)
	run(append(debug, "CLICKSTREAM_ES_USERNAME=clickstream", "CLICKSTREAM_ES_PASSWORD="+esPassword), "top", "--es", es, "--index", alias)
	c.stopAll() // their last words too

	secrets := map[string]string{
		"etcd root password": e.Users.RootPW, "etcd coordinator password": e.Users.CoordinatorPW, "etcd worker password": e.Users.WorkerPW,
		"wrong etcd password": wrongPassword, "Elasticsearch password": esPassword, "S3 secret key": awsSecret,
	}
	keys, err := filepath.Glob(filepath.Join(certs, "*key.pem"))
	if err != nil || len(keys) < 7 {
		t.Fatalf("private keys in %s: %v, %v", certs, keys, err)
	}
	for _, k := range keys {
		data, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		secrets["private key "+filepath.Base(k)] = lines[1] // the first line of its base64 body
	}
	for _, p := range c.procs {
		outputs = append(outputs, p.output())
	}
	all := strings.Join(outputs, "\n")
	if len(all) < 1000 {
		t.Fatalf("only %d bytes of output: are the processes logging?", len(all))
	}
	for what, s := range secrets {
		if s == "" {
			t.Fatalf("%s is empty", what)
		}
		if strings.Contains(all, s) {
			t.Errorf("the %s is printed", what)
		}
	}
	if strings.Contains(all, "PRIVATE KEY") {
		t.Error("a private key is printed")
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
