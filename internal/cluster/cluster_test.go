package cluster

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestKeysRoundTrip(t *testing.T) {
	for _, k := range []Keys{{}, {Prefix: "/test/x"}} {
		if id, err := k.WorkerID(k.Worker("w-1")); err != nil || id != "w-1" {
			t.Errorf("WorkerID: %q %v", id, err)
		}
		if id, err := k.JobID(k.Job("j1")); err != nil || id != "j1" {
			t.Errorf("JobID: %q %v", id, err)
		}
		if j, n, err := k.TaskID(k.Task("j1", 42)); err != nil || j != "j1" || n != 42 {
			t.Errorf("TaskID: %q %d %v", j, n, err)
		}
		if j, n, a, err := k.LeaseID(k.Lease("j1", 3, 2)); err != nil || j != "j1" || n != 3 || a != 2 {
			t.Errorf("LeaseID: %q %d %d %v", j, n, a, err)
		}
		for _, bad := range []string{k.Jobs(), k.Job("j1") + "/x", k.Workers(), k.Tasks("j1"), "/other/jobs/j1"} {
			if _, err := k.JobID(bad); !errors.Is(err, ErrBadKey) {
				t.Errorf("JobID(%q) = %v", bad, err)
			}
		}
		if _, _, _, err := k.LeaseID(k.TaskLeases("j1", 3) + "x"); !errors.Is(err, ErrBadKey) {
			t.Errorf("LeaseID of a bad key: %v", err)
		}
	}
	if got := (Keys{}).Lease("j", 1, 2); got != "/clickstream/v1/leases/j/00001/002" {
		t.Errorf("lease key %s", got)
	}
}

func TestValidate(t *testing.T) {
	for p, ok := range map[string]bool{"/clickstream/v1": true, "/a": true, "": false, "a": false, "/a/": false, "//a": false, "/a b": false} {
		if err := ValidatePrefix(p); (err == nil) != ok {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	for id, ok := range map[string]bool{"w-1.host_2": true, "": false, "a/b": false, "a b": false} {
		if err := ValidateID("job", id); (err == nil) != ok {
			t.Errorf("ValidateID(%q) = %v", id, err)
		}
	}
	if got := ParseEndpoints(" a:1, ,http://b:2 "); !reflect.DeepEqual(got, []string{"a:1", "http://b:2"}) {
		t.Errorf("ParseEndpoints = %q", got)
	}
}

// TestEmbeddedRestart: an embedded etcd restarted on its data directory
// keeps its data.
func TestEmbeddedRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i, want := range []string{"", "kept"} {
		srv, err := StartEmbedded(ctx, EmbeddedConfig{Dir: dir, Fast: true, NoFsync: true, LogLevel: "panic"})
		if err != nil {
			t.Fatal(err)
		}
		cli, err := Dial(ctx, srv.Endpoints(), EtcdAuth{})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cli.Get(ctx, "/k")
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(resp.Kvs) > 0 {
			got = string(resp.Kvs[0].Value)
		}
		if got != want {
			t.Errorf("start %d: /k = %q, want %q", i, got, want)
		}
		if _, err := cli.Put(ctx, "/k", "kept"); err != nil {
			t.Fatal(err)
		}
		cli.Close()
		srv.Close()
	}
}

func TestDialUnreachable(t *testing.T) {
	start := time.Now()
	_, err := Dial(context.Background(), []string{"127.0.0.1:1"}, EtcdAuth{})
	if !errors.Is(err, ErrEtcdUnreachable) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > DialTimeout+2*time.Second {
		t.Errorf("took %v", d)
	}
}
