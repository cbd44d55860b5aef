package lake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// badKeys are rejected by every store and every operation.
var badKeys = []string{
	"", "/abs", "/", "a/../b", "..", "../a", "a/..", "a/./b", ".", "./a",
	"a\\b", "a//b", "a/", "a\x00b",
}

// testStore is the conformance suite every Store implementation passes.
// Each subtest works under its own prefix (through lake.Sub), so that List
// results do not mix.
func testStore(t *testing.T, s lake.Store) {
	ctx := context.Background()

	t.Run("PutGetOverwrite", func(t *testing.T) {
		s := lake.Sub(s, "putget")
		mustPut(t, s, "k", "one")
		if got := mustGet(t, s, "k"); got != "one" {
			t.Fatalf("Get = %q, want %q", got, "one")
		}
		mustPut(t, s, "k", "two")
		if got := mustGet(t, s, "k"); got != "two" {
			t.Fatalf("Get after overwrite = %q, want %q", got, "two")
		}
		mustPut(t, s, "empty", "")
		if got := mustGet(t, s, "empty"); got != "" {
			t.Fatalf("Get of empty object = %q", got)
		}
		key := "events/hour=2026-01-02T03/bucket=0007/kafka.clicks.3-000000000001-wÿ ñ.parquet"
		mustPut(t, s, key, "unicode")
		if got := mustGet(t, s, key); got != "unicode" {
			t.Fatalf("Get(%q) = %q", key, got)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		if err := s.Put(ctx, "big", big); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "big")
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("Get(big): %d bytes, err %v; want %d bytes", len(got), err, len(big))
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		s := lake.Sub(s, "missing")
		mustPut(t, s, "dir/x", "x")
		for _, key := range []string{"nope", "dir", "dir/x/y", "dir/y"} {
			if _, err := s.Get(ctx, key); !errors.Is(err, lake.ErrNotExist) {
				t.Errorf("Get(%q) error = %v, want ErrNotExist", key, err)
			}
		}
	})

	t.Run("GetSized", func(t *testing.T) {
		s := lake.Sub(s, "sized")
		mustPut(t, s, "f", "0123456789")
		mustPut(t, s, "empty", "")
		if got, err := s.GetSized(ctx, "f", 10); err != nil || string(got) != "0123456789" {
			t.Fatalf("GetSized at the size: %q, %v", got, err)
		}
		if got, err := s.GetSized(ctx, "empty", 0); err != nil || len(got) != 0 {
			t.Fatalf("GetSized of an empty object: %q, %v", got, err)
		}
		// Another size than recorded is an error, never a truncated read.
		for _, size := range []int64{0, 9, 11, 1 << 40} {
			if got, err := s.GetSized(ctx, "f", size); !errors.Is(err, lake.ErrSize) || got != nil {
				t.Errorf("GetSized(size %d) of 10 bytes = %q, %v; want ErrSize", size, got, err)
			}
		}
		if _, err := s.GetSized(ctx, "f", -1); err == nil {
			t.Error("GetSized with a negative size succeeded")
		}
		if _, err := s.GetSized(ctx, "nope", 10); !errors.Is(err, lake.ErrNotExist) {
			t.Errorf("GetSized of a missing key: %v, want ErrNotExist", err)
		}
		for _, k := range badKeys {
			if _, err := s.GetSized(ctx, k, 1); err == nil || errors.Is(err, lake.ErrNotExist) {
				t.Errorf("GetSized(%q) error = %v, want a bad key error", k, err)
			}
		}
	})

	t.Run("PutIfAbsentTwice", func(t *testing.T) {
		s := lake.Sub(s, "ifabsent")
		if err := s.PutIfAbsent(ctx, "m/1.json", []byte("first")); err != nil {
			t.Fatal(err)
		}
		err := s.PutIfAbsent(ctx, "m/1.json", []byte("second"))
		if !errors.Is(err, lake.ErrExists) {
			t.Fatalf("second PutIfAbsent error = %v, want ErrExists", err)
		}
		// Same bytes again: still taken (no idempotent success).
		if err := s.PutIfAbsent(ctx, "m/1.json", []byte("first")); !errors.Is(err, lake.ErrExists) {
			t.Fatalf("PutIfAbsent with same bytes error = %v, want ErrExists", err)
		}
		if got := mustGet(t, s, "m/1.json"); got != "first" {
			t.Fatalf("Get = %q, want the first writer's %q", got, "first")
		}
		// After a Delete the key is free again.
		if err := s.Delete(ctx, "m/1.json"); err != nil {
			t.Fatal(err)
		}
		if err := s.PutIfAbsent(ctx, "m/1.json", []byte("third")); err != nil {
			t.Fatalf("PutIfAbsent after Delete: %v", err)
		}
	})

	t.Run("PutIfAbsentRace", func(t *testing.T) {
		s := lake.Sub(s, "race")
		const writers, rounds = 16, 5
		for round := range rounds {
			key := fmt.Sprintf("seq/%012d.json", round)
			var wins atomic.Int32
			winner := make(chan string, writers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for w := range writers {
				wg.Go(func() {
					body := fmt.Sprintf(`{"writer":%d,"pad":%q}`, w, strings.Repeat("x", 1000*w))
					<-start
					err := s.PutIfAbsent(ctx, key, []byte(body))
					switch {
					case err == nil:
						wins.Add(1)
						winner <- body
					case !errors.Is(err, lake.ErrExists):
						t.Errorf("writer %d: %v", w, err)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := wins.Load(); n != 1 {
				t.Fatalf("round %d: %d winners, want exactly 1", round, n)
			}
			if got, want := mustGet(t, s, key), <-winner; got != want {
				t.Fatalf("round %d: stored %.40q..., want the winner's %.40q...", round, got, want)
			}
		}
	})

	t.Run("ListPrefixSorted", func(t *testing.T) {
		s := lake.Sub(s, "list")
		keys := []string{"b/1", "a/b/d", "ab", "a/b/c", "a.x", "a/b-c", "a/bc/e/f/g", "a/b0"}
		for _, k := range keys {
			mustPut(t, s, k, "data of "+k)
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"a.x", "a/b-c", "a/b/c", "a/b/d", "a/b0", "a/bc/e/f/g", "ab", "b/1"}},
			{"a", []string{"a.x", "a/b-c", "a/b/c", "a/b/d", "a/b0", "a/bc/e/f/g", "ab"}},
			{"a/", []string{"a/b-c", "a/b/c", "a/b/d", "a/b0", "a/bc/e/f/g"}},
			{"a/b", []string{"a/b-c", "a/b/c", "a/b/d", "a/b0", "a/bc/e/f/g"}},
			{"a/b/", []string{"a/b/c", "a/b/d"}},
			{"a/bc/e/", []string{"a/bc/e/f/g"}},
			{"a/b/c", []string{"a/b/c"}},
			{"zz", nil},
			{"zz/yy/", nil},
			{"b/1/", nil},
		} {
			objs, err := s.List(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tc.prefix, err)
			}
			if got := keysOf(objs); !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
			for _, o := range objs {
				if want := int64(len("data of " + o.Key)); o.Size != want || o.ModTime.IsZero() {
					t.Errorf("List(%q): %s size %d modtime %v, want size %d and a modtime", tc.prefix, o.Key, o.Size, o.ModTime, want)
				}
			}
		}
	})

	t.Run("ListMany", func(t *testing.T) {
		s := lake.Sub(s, "many")
		const n = 1100 // more than one ListObjectsV2 page
		keys := make(chan string)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for k := range keys {
					if err := s.Put(ctx, k, []byte(k)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := range n {
			keys <- fmt.Sprintf("d%d/%05d", i%3, i)
		}
		close(keys)
		wg.Wait()
		objs, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		got := keysOf(objs)
		if len(got) != n || !slices.IsSorted(got) {
			t.Fatalf("List returned %d keys (sorted: %v), want %d sorted", len(got), slices.IsSorted(got), n)
		}
		objs, err = s.List(ctx, "d1/")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != n/3+boolInt(n%3 > 1) {
			t.Fatalf("List(d1/) returned %d keys", len(objs))
		}
	})

	t.Run("DeleteIdempotent", func(t *testing.T) {
		s := lake.Sub(s, "delete")
		mustPut(t, s, "x/y", "data")
		for i := range 2 {
			if err := s.Delete(ctx, "x/y"); err != nil {
				t.Fatalf("Delete #%d: %v", i+1, err)
			}
		}
		if err := s.Delete(ctx, "never/was"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if _, err := s.Get(ctx, "x/y"); !errors.Is(err, lake.ErrNotExist) {
			t.Fatalf("Get after Delete error = %v, want ErrNotExist", err)
		}
		if objs, err := s.List(ctx, ""); err != nil || len(objs) != 0 {
			t.Fatalf("List after Delete = %v, %v; want nothing", keysOf(objs), err)
		}
	})

	t.Run("BadKeys", func(t *testing.T) {
		for _, st := range []lake.Store{s, lake.Sub(s, "badkeys")} {
			for _, k := range badKeys {
				if err := st.Put(ctx, k, []byte("x")); err == nil {
					t.Errorf("Put(%q) succeeded", k)
				}
				if err := st.PutIfAbsent(ctx, k, []byte("x")); err == nil || errors.Is(err, lake.ErrExists) {
					t.Errorf("PutIfAbsent(%q) error = %v, want a bad key error", k, err)
				}
				if _, err := st.Get(ctx, k); err == nil || errors.Is(err, lake.ErrNotExist) {
					t.Errorf("Get(%q) error = %v, want a bad key error", k, err)
				}
				if err := st.Delete(ctx, k); err == nil {
					t.Errorf("Delete(%q) succeeded", k)
				}
			}
			for _, p := range []string{"/", "/a", "../", "a/../", "a//", "a\\"} {
				if _, err := st.List(ctx, p); err == nil {
					t.Errorf("List(%q) succeeded", p)
				}
			}
		}
	})

	t.Run("Sub", func(t *testing.T) {
		sub := lake.Sub(lake.Sub(s, "subview/one"), "two/")
		if want := strings.TrimSuffix(s.URI(), "/") + "/subview/one/two"; sub.URI() != want {
			t.Errorf("URI = %q, want %q", sub.URI(), want)
		}
		mustPut(t, sub, "k/v", "sub")
		if got := mustGet(t, s, "subview/one/two/k/v"); got != "sub" {
			t.Fatalf("parent Get = %q", got)
		}
		objs, err := sub.List(ctx, "k")
		if err != nil || !slices.Equal(keysOf(objs), []string{"k/v"}) {
			t.Fatalf("sub List = %q, %v", keysOf(objs), err)
		}
		if lake.Sub(s, "") != s || lake.Sub(s, "/") != s {
			t.Error("Sub with a blank prefix is not the store itself")
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		s := lake.Sub(s, "canceled")
		if err := s.Put(cctx, "k", []byte("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Put error = %v, want context.Canceled", err)
		}
		if err := s.PutIfAbsent(cctx, "k", []byte("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("PutIfAbsent error = %v, want context.Canceled", err)
		}
		if _, err := s.Get(cctx, "k"); !errors.Is(err, context.Canceled) {
			t.Errorf("Get error = %v, want context.Canceled", err)
		}
		if _, err := s.List(cctx, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("List error = %v, want context.Canceled", err)
		}
	})
}

func mustPut(t *testing.T, s lake.Store, key, data string) {
	t.Helper()
	if err := s.Put(context.Background(), key, []byte(data)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s lake.Store, key string) string {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(b)
}

func keysOf(objs []lake.ObjectInfo) []string {
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestFileStore(t *testing.T) {
	testStore(t, laketest.NewFile(t))
}

func TestFileStoreURI(t *testing.T) {
	dir := t.TempDir()
	s, err := lake.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "file://" + filepath.ToSlash(dir); s.URI() != want {
		t.Fatalf("URI = %q, want %q", s.URI(), want)
	}
	// The URI opens the same folder.
	s2, err := lake.Open(context.Background(), s.URI(), laketest.S3Options())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "a/b", "x")
	if got := mustGet(t, s2, "a/b"); got != "x" {
		t.Fatalf("reopened store Get = %q", got)
	}
}

// TestFileStoreTempsHidden checks that files being written never show up
// in List, and that the temp folder's name is reserved.
func TestFileStoreTempsHidden(t *testing.T) {
	ctx := context.Background()
	s := laketest.NewFile(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var wrote sync.WaitGroup // each writer's first Put, which makes the temp folder
	wrote.Add(4)
	for w := range 4 {
		wg.Go(func() {
			data := bytes.Repeat([]byte{'x'}, 64<<10)
			first := true
			defer func() {
				if first {
					wrote.Done()
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d/%d", w, i%10)
				if err := s.Put(ctx, key, data); err != nil {
					t.Error(err)
					return
				}
				if first {
					first = false
					wrote.Done()
				}
				if err := s.PutIfAbsent(ctx, key+".m", data); err != nil && !errors.Is(err, lake.ErrExists) {
					t.Error(err)
					return
				}
			}
		})
	}
	wrote.Wait()
	for range 200 {
		objs, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if strings.Contains(o.Key, ".tmp") {
				t.Fatalf("List shows a temp file: %s", o.Key)
			}
		}
	}
	close(stop)
	wg.Wait()
	// Every temp file is gone once the writers are done.
	ents, err := os.ReadDir(filepath.Join(s.(*lake.FileStore).Dir(), ".tmp"))
	if err != nil || len(ents) != 0 {
		t.Fatalf("temp folder holds %d entries (err %v), want 0", len(ents), err)
	}
	for _, k := range []string{".tmp", ".tmp/x"} {
		if err := s.Put(ctx, k, nil); err == nil {
			t.Errorf("Put(%q) into the reserved temp folder succeeded", k)
		}
	}
}

// TestFileStoreRaceAcrossInstances runs the PutIfAbsent race between
// separate stores on one folder, as separate processes would.
func TestFileStoreRaceAcrossInstances(t *testing.T) {
	dir := t.TempDir()
	const writers = 16
	stores := make([]lake.Store, writers)
	for i := range stores {
		s, err := lake.NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			err := s.PutIfAbsent(context.Background(), "_manifests/src/000000000001.json", fmt.Appendf(nil, "%d", i))
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, lake.ErrExists) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d winners, want 1", wins.Load())
	}
}

// TestFileStoreSymlinks: a key that a symbolic link leads out of the
// store's folder is refused by every operation, which reads, writes,
// creates and deletes nothing outside; links that stay inside are
// followed.
func TestFileStoreSymlinks(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "store"), filepath.Join(base, "outside")
	for _, d := range []string{dir, outside, filepath.Join(dir, "real")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"abs":         outside,                          // a folder outside, absolute
		"rel":         "../outside",                     // the same, relative
		"file":        filepath.Join(outside, "secret"), // a file outside
		"real/up":     "../../outside",                  // deeper, climbing out
		"in":          "real",                           // a folder inside
		"real/secret": "../../outside/secret",           // a file outside, as an object's name
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := lake.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	outsideBefore := listTree(t, outside)

	for _, key := range []string{"abs/secret", "rel/secret", "file", "real/up/secret", "in/up/secret", "real/secret"} {
		t.Run(key, func(t *testing.T) {
			if got, err := s.Get(ctx, key); !errors.Is(err, lake.ErrOutsideRoot) {
				t.Errorf("Get = %q, %v; want ErrOutsideRoot", got, err)
			}
			if got, err := s.GetSized(ctx, key, 6); !errors.Is(err, lake.ErrOutsideRoot) {
				t.Errorf("GetSized = %q, %v; want ErrOutsideRoot", got, err)
			}
			if err := s.Put(ctx, key, []byte("forged")); !errors.Is(err, lake.ErrOutsideRoot) {
				t.Errorf("Put: %v, want ErrOutsideRoot", err)
			}
			if err := s.PutIfAbsent(ctx, key, []byte("forged")); !errors.Is(err, lake.ErrOutsideRoot) {
				t.Errorf("PutIfAbsent: %v, want ErrOutsideRoot", err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, lake.ErrOutsideRoot) {
				t.Errorf("Delete: %v, want ErrOutsideRoot", err)
			}
		})
	}
	for _, key := range []string{"abs/new", "rel/a/b/new", "real/up/new", "in/up/x/new"} {
		if err := s.Put(ctx, key, []byte("x")); !errors.Is(err, lake.ErrOutsideRoot) {
			t.Errorf("Put(%q): %v, want ErrOutsideRoot", key, err)
		}
		if err := s.PutIfAbsent(ctx, key, []byte("x")); !errors.Is(err, lake.ErrOutsideRoot) {
			t.Errorf("PutIfAbsent(%q): %v, want ErrOutsideRoot", key, err)
		}
	}
	for _, prefix := range []string{"abs/", "rel/x", "real/up/", "in/up/"} {
		if objs, err := s.List(ctx, prefix); !errors.Is(err, lake.ErrOutsideRoot) {
			t.Errorf("List(%q) = %v, %v; want ErrOutsideRoot", prefix, keysOf(objs), err)
		}
	}
	if got := listTree(t, outside); !slices.Equal(got, outsideBefore) {
		t.Fatalf("the folder outside changed: %q, was %q", got, outsideBefore)
	}
	if data, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(data) != "secret" {
		t.Fatalf("the file outside changed: %q, %v", data, err)
	}

	// Inside the folder, links are followed; List shows no links.
	mustPut(t, s, "in/obj", "inside")
	if got := mustGet(t, s, "real/obj"); got != "inside" {
		t.Fatalf("Get through the real folder = %q", got)
	}
	objs, err := s.List(ctx, "")
	if err != nil || !slices.Equal(keysOf(objs), []string{"real/obj"}) {
		t.Fatalf("List = %q, %v; want only real/obj", keysOf(objs), err)
	}
	if objs, err := s.List(ctx, "in/"); err != nil || !slices.Equal(keysOf(objs), []string{"in/obj"}) {
		t.Fatalf("List(in/) = %q, %v", keysOf(objs), err)
	}
}

// TestFileStoreReadsCreateNothing: a store that is only read (a worker's
// lake) creates nothing in its folder, not even the temp folder, which
// the first write makes.
func TestFileStoreReadsCreateNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := lake.Open(ctx, "file://"+dir, laketest.S3Options())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Get(ctx, "a/b")
	_, _ = s.GetSized(ctx, "a/b", 1)
	_, _ = s.List(ctx, "a/")
	_ = s.Delete(ctx, "a/b")
	if got := listTree(t, dir); len(got) != 0 {
		t.Fatalf("reads created %q", got)
	}
	mustPut(t, s, "a/b", "x")
	if got := listTree(t, dir); !slices.Equal(got, []string{".tmp/", "a/", "a/b"}) {
		t.Fatalf("after a write: %q", got)
	}

	// The filesystem's root as a store: reading it writes nothing there.
	_, before := os.Lstat("/.tmp")
	root, err := lake.Open(ctx, "file:///", laketest.S3Options())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = root.Get(ctx, "clickstream-no-such-key")
	_, _ = root.List(ctx, "clickstream-no-such-prefix/")
	if _, after := os.Lstat("/.tmp"); errors.Is(before, fs.ErrNotExist) && !errors.Is(after, fs.ErrNotExist) {
		t.Fatal("reading the store file:/// created /.tmp")
	}
}

// TestFileStoreFolderReplaced: a store follows its folder's name, as
// path-based calls would: a folder replaced under it (a lake rebuilt in
// place) is the one read and written next.
func TestFileStoreFolderReplaced(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "lake")
	s, err := lake.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", "old")
	if err := os.Rename(dir, filepath.Join(base, "lake.old")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "k"); !errors.Is(err, lake.ErrNotExist) {
		t.Fatalf("Get with the folder gone: %v, want ErrNotExist", err)
	}
	mustPut(t, s, "k", "new")
	if data, err := os.ReadFile(filepath.Join(dir, "k")); err != nil || string(data) != "new" {
		t.Fatalf("the new folder holds %q, %v", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(base, "lake.old", "k")); err != nil || string(data) != "old" {
		t.Fatalf("the moved folder holds %q, %v", data, err)
	}
}

// listTree lists the files and folders (with a trailing '/') under dir,
// sorted, without following links.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
