package mtls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
)

const (
	checkMethod = "/grpc.health.v1.Health/Check"
	listMethod  = "/grpc.health.v1.Health/List"
)

// policy: viewers check, only coordinators list, nobody watches.
var policy = mtls.Policy{
	checkMethod: {mtls.RoleViewer, mtls.RoleOperator},
	listMethod:  {mtls.RoleCoordinator},
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// writeFiles writes ca's certificate and one issued for uri into dir.
func writeFiles(t *testing.T, dir string, ca *pki.CA, r pki.Request) mtls.Files {
	t.Helper()
	c, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	f := mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	for name, data := range map[string][]byte{f.CA: ca.CertPEM(), f.Cert: c.CertPEM, f.Key: c.KeyPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func staticSource(t *testing.T, ca *pki.CA, r pki.Request) *mtls.Source {
	t.Helper()
	c, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.TLS()
	if err != nil {
		t.Fatal(err)
	}
	src, err := mtls.Static(tc, ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// serve starts a health server authenticated by src and returns its address.
func serve(t *testing.T, src *mtls.Source) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(mtls.ServerOptions(src, policy)...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

func call(t *testing.T, addr string, creds credentials.TransportCredentials, method string) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if method == listMethod {
		_, err = healthpb.NewHealthClient(cc).List(ctx, &healthpb.HealthListRequest{})
	} else {
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	}
	return err
}

func TestRolesAndRefusals(t *testing.T) {
	ca := newCA(t)
	server := staticSource(t, ca, pki.Request{URI: "spiffe://clickstream/coordinator/c1"})
	addr := serve(t, server)
	coord := mtls.ExpectRole(mtls.RoleCoordinator)
	client := func(ca *pki.CA, r pki.Request) credentials.TransportCredentials {
		return mtls.ClientCredentials(staticSource(t, ca, r), coord)
	}
	now := time.Now()
	cases := []struct {
		name   string
		creds  credentials.TransportCredentials
		method string
		code   codes.Code
		msg    string
	}{
		{"viewer checks", client(ca, pki.Request{URI: "spiffe://clickstream/viewer/v"}), checkMethod, codes.OK, ""},
		{"operator checks", client(ca, pki.Request{URI: "spiffe://clickstream/operator/o"}), checkMethod, codes.OK, ""},
		{"viewer lists", client(ca, pki.Request{URI: "spiffe://clickstream/viewer/v"}), listMethod, codes.PermissionDenied, "spiffe://clickstream/viewer/v may not call it: it needs role coordinator"},
		{"worker checks", client(ca, pki.Request{URI: "spiffe://clickstream/worker/w"}), checkMethod, codes.PermissionDenied, "it needs role viewer or operator"},
		{"another CA", rawClient(t, newCA(t), pki.Request{URI: "spiffe://clickstream/viewer/v"}), checkMethod, codes.Unauthenticated, "certificate not trusted"},
		{"expired", client(ca, pki.Request{URI: "spiffe://clickstream/viewer/v", NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}), checkMethod, codes.Unauthenticated, "expired"},
		{"no identity", rawClient(t, ca, pki.Request{URI: "https://example.com/viewer"}), checkMethod, codes.Unauthenticated, "no URI SAN spiffe://clickstream/<role>/<name>"},
		{"no certificate", credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}), checkMethod, codes.Unauthenticated, "no client certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, addr, tc.creds, tc.method)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
}

// rawClient presents a certificate without checking it has an identity.
func rawClient(t *testing.T, ca *pki.CA, r pki.Request) credentials.TransportCredentials {
	c, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{tc}, InsecureSkipVerify: true})
}

func TestClientChecksServerIdentity(t *testing.T) {
	ca := newCA(t)
	addr := serve(t, staticSource(t, ca, pki.Request{URI: "spiffe://clickstream/worker/w-1"}))
	viewer := staticSource(t, ca, pki.Request{URI: "spiffe://clickstream/viewer/v"})
	for _, tc := range []struct {
		expect mtls.Expectation
		ok     bool
	}{
		{mtls.Expect(mtls.Identity{Role: mtls.RoleWorker, Name: "w-1"}), true},
		{mtls.Expect(mtls.Identity{Role: mtls.RoleWorker, Name: "w-2"}), false},
		{mtls.ExpectRole(mtls.RoleCoordinator), false},
	} {
		err := call(t, addr, mtls.ClientCredentials(viewer, tc.expect), checkMethod)
		if tc.ok != (err == nil) || (!tc.ok && !strings.Contains(err.Error(), "unexpected peer identity")) {
			t.Fatalf("expect ok=%v, got %v", tc.ok, err)
		}
	}
	// A server of another CA is refused whatever its identity.
	other := serve(t, staticSource(t, newCA(t), pki.Request{URI: "spiffe://clickstream/worker/w-1"}))
	if err := call(t, other, mtls.ClientCredentials(viewer, mtls.ExpectRole(mtls.RoleWorker)), checkMethod); err == nil || !strings.Contains(err.Error(), "certificate not trusted") {
		t.Fatalf("server of another CA: %v", err)
	}
}

// TestReload rotates the server's files: the next connection sees the new
// certificate, and a half-written rotation keeps the previous pair.
func TestReload(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	files := writeFiles(t, dir, ca, pki.Request{URI: "spiffe://clickstream/worker/old"})
	src, err := mtls.Load(files)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, src)
	viewer := staticSource(t, ca, pki.Request{URI: "spiffe://clickstream/viewer/v"})
	expect := func(name string) credentials.TransportCredentials {
		return mtls.ClientCredentials(viewer, mtls.Expect(mtls.Identity{Role: mtls.RoleWorker, Name: name}))
	}
	if err := call(t, addr, expect("old"), checkMethod); err != nil {
		t.Fatal(err)
	}
	// Half a rotation: a new certificate, the old key.
	next, err := ca.Issue(pki.Request{URI: "spiffe://clickstream/worker/new"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Cert, next.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := call(t, addr, expect("old"), checkMethod); err != nil {
		t.Fatalf("half-rotated files: the previous pair should stay: %v", err)
	}
	if err := src.ReloadError(); err == nil {
		t.Fatal("no reload error for a certificate with another key")
	}
	if err := os.WriteFile(files.Key, next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := call(t, addr, expect("new"), checkMethod); err != nil {
		t.Fatalf("after the rotation: %v", err)
	}
	if src.Identity().Name != "new" || src.ReloadError() != nil {
		t.Fatalf("identity %v, reload error %v", src.Identity(), src.ReloadError())
	}
}

func TestParseIdentity(t *testing.T) {
	for uri, ok := range map[string]bool{
		"spiffe://clickstream/worker/w-1.a_b":   true,
		"spiffe://clickstream/operator/alice":   true,
		"spiffe://clickstream/admin/alice":      false,
		"spiffe://other/worker/w":               false,
		"spiffe://clickstream/worker/":          false,
		"spiffe://clickstream/worker/a/b":       false,
		"spiffe://clickstream/worker":           false,
		"spiffe://clickstream/viewer/x%2F..%2F": false,
	} {
		id, err := mtls.ParseIdentity(uri)
		if ok != (err == nil) {
			t.Errorf("%s: %v", uri, err)
		}
		if err != nil && !errors.Is(err, mtls.ErrIdentity) {
			t.Errorf("%s: error not ErrIdentity: %v", uri, err)
		}
		if ok && id.URI() != uri {
			t.Errorf("%s: round trip %s", uri, id.URI())
		}
	}
}

// FuzzParseIdentity: an accepted URI names a known role and a clean name,
// and prints back as itself.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"spiffe://clickstream/worker/w-1", "spiffe://clickstream/operator/a.b_c", "spiffe://clickstream/viewer/..", "spiffe://clickstream//x", "spiffe://clickstream/worker/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		id, err := mtls.ParseIdentity(uri)
		if err != nil {
			return
		}
		if id.URI() != uri {
			t.Fatalf("%q parsed as %v", uri, id)
		}
		if _, err := mtls.NewIdentity(id.Role, id.Name); err != nil {
			t.Fatalf("%q: accepted, but its parts are not: %v", uri, err)
		}
		if strings.ContainsAny(id.Name, "/\\%") || id.Name == "." || id.Name == ".." {
			t.Fatalf("%q: name %q", uri, id.Name)
		}
	})
}

// TestProbe: a handshake alone tells which identity a server proves.
func TestProbe(t *testing.T) {
	ca := newCA(t)
	w1 := mtls.Identity{Role: mtls.RoleWorker, Name: "w-1"}
	addr := serve(t, staticSource(t, ca, pki.Request{URI: w1.URI()}))
	coord := staticSource(t, ca, pki.Request{URI: "spiffe://clickstream/coordinator/c"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := mtls.Probe(ctx, coord, addr, mtls.Expect(w1))
	if err != nil || id != w1 {
		t.Fatalf("probe: %v, %v", id, err)
	}
	_, err = mtls.Probe(ctx, coord, addr, mtls.Expect(mtls.Identity{Role: mtls.RoleWorker, Name: "w-2"}))
	if !errors.Is(err, mtls.ErrWrongPeer) || !strings.Contains(err.Error(), "the server is spiffe://clickstream/worker/w-1, want spiffe://clickstream/worker/w-2") {
		t.Fatalf("probe of another identity: %v", err)
	}
	other := serve(t, staticSource(t, newCA(t), pki.Request{URI: w1.URI()}))
	if _, err := mtls.Probe(ctx, coord, other, mtls.Expect(w1)); err == nil || !strings.Contains(err.Error(), "certificate not trusted") {
		t.Fatalf("probe of a server of another CA: %v", err)
	}
}
