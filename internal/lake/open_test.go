package lake_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct {
		uri, dir string
	}{
		{"file://" + dir, dir},
		{"file://" + dir + "/", dir},
		{"file://localhost" + dir + "/sub", filepath.Join(dir, "sub")},
		{"file://./rel/../rel2", filepath.Join(dir, "rel2")},
		{"file://.", dir},
		{dir + "/bare", filepath.Join(dir, "bare")},
		{dir + "/bare/../bare2/", filepath.Join(dir, "bare2")},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			s, err := lake.Open(context.Background(), tc.uri, laketest.S3Options())
			if err != nil {
				t.Fatal(err)
			}
			fs, ok := s.(*lake.FileStore)
			if !ok {
				t.Fatalf("Open returned %T, want *lake.FileStore", s)
			}
			if fs.Dir() != tc.dir {
				t.Errorf("Dir = %q, want %q", fs.Dir(), tc.dir)
			}
			if fi, err := os.Stat(tc.dir); err != nil || !fi.IsDir() {
				t.Errorf("store folder not created: %v", err)
			}
			// The temp folder waits for the first write.
			if _, err := os.Stat(filepath.Join(tc.dir, ".tmp")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temp folder made by Open: %v", err)
			}
		})
	}
}

func TestOpenS3(t *testing.T) {
	for _, tc := range []struct {
		uri, want string
	}{
		{"s3://bucket", "s3://bucket"},
		{"s3://bucket/", "s3://bucket"},
		{"s3://my.bucket-1/some/prefix", "s3://my.bucket-1/some/prefix"},
		{"s3://bucket/some/prefix/", "s3://bucket/some/prefix"},
	} {
		s, err := lake.Open(context.Background(), tc.uri, lake.S3Options{Endpoint: "http://127.0.0.1:1", Region: "eu-west-1"})
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.uri, err)
		}
		s3s, ok := s.(*lake.S3Store)
		if !ok {
			t.Fatalf("Open(%q) returned %T", tc.uri, s)
		}
		if s.URI() != tc.want {
			t.Errorf("Open(%q).URI() = %q, want %q", tc.uri, s.URI(), tc.want)
		}
		o := s3s.Client().Options()
		if got := *o.BaseEndpoint; got != "http://127.0.0.1:1" || !o.UsePathStyle || o.Region != "eu-west-1" {
			t.Errorf("Open(%q): endpoint %q path-style %v region %q; want the env endpoint, path-style, eu-west-1", tc.uri, got, o.UsePathStyle, o.Region)
		}
	}
	// An explicit endpoint wins over the environment.
	s, err := lake.Open(context.Background(), "s3://bucket", lake.S3Options{Endpoint: "http://127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := *s.(*lake.S3Store).Client().Options().BaseEndpoint; got != "http://127.0.0.1:2" {
		t.Errorf("endpoint = %q, want the explicit one", got)
	}
}

func TestOpenDefaultRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_PROFILE", "")
	s, err := lake.NewS3Store(context.Background(), "bucket", "", lake.S3Options{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Client().Options().Region; r != lake.DefaultS3Region {
		t.Fatalf("region = %q, want %q", r, lake.DefaultS3Region)
	}
}

func TestOpenBadURIs(t *testing.T) {
	for _, uri := range []string{
		"", "rel/dir", "./rel", "s3:bucket", "c:dir", "http://host/x", "S3://bucket", "gs://bucket",
		"file:rel", "file://host/dir", "file://rel/dir", "file://",
		"s3://", "s3:///prefix", "s3://ab", "s3://Bucket", "s3://bucket_x", "s3://-bucket",
		"s3://bucket/../x", "s3://bucket/a//b", "s3://bucket/a\\b",
	} {
		_, err := lake.Open(context.Background(), uri, laketest.S3Options())
		if err == nil {
			t.Errorf("Open(%q) succeeded", uri)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(uri)) {
			t.Errorf("Open(%q) error %q does not name the URI", uri, err)
		}
		if !errors.Is(err, lake.ErrBadURI) {
			t.Errorf("Open(%q) error %q is not ErrBadURI", uri, err)
		}
	}
	_, err := lake.Open(context.Background(), "gs://bucket", laketest.S3Options())
	if !strings.Contains(err.Error(), "s3://bucket/prefix") || !strings.Contains(err.Error(), "file:///") {
		t.Errorf("error %q does not list the accepted forms", err)
	}
}

func TestSubPanicsOnBadPrefix(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Sub with a .. prefix did not panic")
		}
	}()
	lake.Sub(lake.Store(nil), "a/../b")
}

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "lake-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := lake.Open(ctx, "file://"+dir, laketest.S3Options())
	if err != nil {
		panic(err)
	}
	out := lake.Sub(store, "outputs/run-1")
	if err := out.PutIfAbsent(ctx, "_SUCCESS", []byte("ok")); err != nil {
		panic(err)
	}
	err = out.PutIfAbsent(ctx, "_SUCCESS", []byte("again"))
	fmt.Println(errors.Is(err, lake.ErrExists))
	objs, err := store.List(ctx, "outputs/")
	if err != nil {
		panic(err)
	}
	for _, o := range objs {
		fmt.Println(o.Key, o.Size)
	}
	// Output:
	// true
	// outputs/run-1/_SUCCESS 2
}

func TestUnder(t *testing.T) {
	roots := []string{"file:///data/lake", "s3://results/jobs/"}
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"file:///data/lake", true},
		{"file:///data/lake/", true},
		{"file:///data/lake/sub", true},
		{"file:///data/lake-2", false},
		{"file:///data", false},
		{"file:///data/lake/../etc", false},
		{"file:///data/lake/./x", false},
		{"s3://results/jobs", true},
		{"s3://results/jobs/2026/x", true},
		{"s3://results/jobsx", false},
		{"s3://results", false},
		{"s3://other/jobs", false},
		{"file:///", false},
	} {
		if got := lake.Under(tc.uri, roots); got != tc.want {
			t.Errorf("Under(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
	for uri, want := range map[string]string{
		"file:///data/lake":          "file:///data/lake",
		"file:///data//lake/":        "file:///data/lake",
		"file://localhost/data/lake": "file:///data/lake",
		"file:///data/lake/../x":     "file:///data/x",
		"s3://bucket":                "s3://bucket",
		"s3://bucket/some/prefix/":   "s3://bucket/some/prefix",
		"s3://Bucket/x":              "",
		"s3://":                      "",
		"file://":                    "",
		"/data":                      "file:///data",
		"/data//lake/../x/":          "file:///data/x",
		"data":                       "",
		"gs://bucket":                "",
	} {
		got, err := lake.Canonical(uri)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", uri, got, err, want)
		}
	}
	// The canonical form is what an opened store reports.
	dir := t.TempDir()
	st, err := lake.Open(context.Background(), "file://"+dir+"/./x//y/", lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := lake.Canonical("file://" + dir + "/./x//y/"); c != st.URI() {
		t.Errorf("Canonical %q, store URI %q", c, st.URI())
	}
}

// TestOpenUnder: a store outside the roots is refused before anything is
// created; a file store below a root is opened from the root down, and a
// symbolic link below the root that leads out of it is refused, creating
// nothing outside.
func TestOpenUnder(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "real"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"out": outside, "up": "..", "in": "real"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	roots, err := lake.CanonicalRoots([]string{"file://" + root, "s3://results/jobs"})
	if err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{
		"file://" + outside,
		"file://" + root + "/../outside",
		"file://" + root + "/out",
		"file://" + root + "/out/lake",
		"file://" + root + "/up/outside/lake",
		"file://" + root + "/in/../out/x",
		"file:///",
		"s3://results/other",
		"s3://results",
	} {
		if s, err := lake.OpenUnder(ctx, uri, roots, laketest.S3Options()); !errors.Is(err, lake.ErrOutsideRoot) {
			t.Errorf("OpenUnder(%q) = %v, %v; want ErrOutsideRoot", uri, s, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("refused stores created %v outside the root", entries)
	}
	if _, err := lake.OpenUnder(ctx, "gopher://x", roots, laketest.S3Options()); !errors.Is(err, lake.ErrBadURI) {
		t.Errorf("OpenUnder of a bad URI: %v, want ErrBadURI", err)
	}

	for _, tc := range []struct{ uri, dir string }{
		{"file://" + root, root},
		{"file://" + root + "/lake/a", filepath.Join(root, "lake", "a")},
		{"file://" + root + "/in/lake", filepath.Join(root, "real", "lake")},
	} {
		s, err := lake.OpenUnder(ctx, tc.uri, roots, laketest.S3Options())
		if err != nil {
			t.Fatalf("OpenUnder(%q): %v", tc.uri, err)
		}
		mustPut(t, s, "k", "v")
		if data, err := os.ReadFile(filepath.Join(tc.dir, "k")); err != nil || string(data) != "v" {
			t.Fatalf("OpenUnder(%q) wrote %q, %v into %s", tc.uri, data, err, tc.dir)
		}
	}
	// Under the filesystem's root, every folder is inside; but os.Root
	// follows no absolute link, wherever it points.
	if err := os.Symlink("../outside", filepath.Join(root, "relative")); err != nil {
		t.Fatal(err)
	}
	if _, err := lake.OpenUnder(ctx, "file://"+root+"/out/lake", []string{"file:///"}, laketest.S3Options()); !errors.Is(err, lake.ErrOutsideRoot) {
		t.Fatalf("an absolute link under file:///: %v, want ErrOutsideRoot", err)
	}
	s, err := lake.OpenUnder(ctx, "file://"+root+"/relative/lake", []string{"file:///"}, laketest.S3Options())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", "v")
	if data, err := os.ReadFile(filepath.Join(outside, "lake", "k")); err != nil || string(data) != "v" {
		t.Fatalf("under file:///: %q, %v", data, err)
	}
}

func TestResolveURI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ in, want string }{
		{"/data/lake", "file:///data/lake"},
		{"/data//lake/", "file:///data/lake"},
		{"lake", "file://" + filepath.ToSlash(filepath.Join(dir, "lake"))},
		{"./out/x", "file://" + filepath.ToSlash(filepath.Join(dir, "out", "x"))},
		{"../up", "file://" + filepath.ToSlash(filepath.Join(filepath.Dir(dir), "up"))},
		{".", "file://" + filepath.ToSlash(dir)},
		{"file://./rel", "file://" + filepath.ToSlash(filepath.Join(dir, "rel"))},
		{"file:///abs/dir/", "file:///abs/dir"},
		{"file://localhost/abs", "file:///abs"},
		{"s3://bucket/prefix", "s3://bucket/prefix"},
		{"", ""},
		{"http://host/x", ""},
		{"gs://bucket", ""},
		{"s3:bucket", ""},
		{"file:rel", ""},
		{"file://rel/dir", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := lake.ResolveURI(tc.in)
			if tc.want == "" {
				if err == nil || !errors.Is(err, lake.ErrBadURI) {
					t.Fatalf("ResolveURI(%q) = %q, %v; want an ErrBadURI error", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ResolveURI(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			// What it returns opens without the working directory.
			if c, err := lake.Canonical(got); err != nil || c != got {
				t.Errorf("Canonical(%q) = %q, %v", got, c, err)
			}
		})
	}
}
