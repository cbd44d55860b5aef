package coordinator

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

func TestJobSpecFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) (*pb.JobSpec, error) {
		t.Helper()
		var f JobSpecFlags
		fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
		f.AddFlags(fs, "lake URI")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Spec()
	}
	const from, to = "2026-11-27T00:00:00Z", "2026-11-27T03:00:00Z"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no from", []string{"--to", to, "--out", "file:///x"}, "--from is required"},
		{"no to", []string{"--from", from, "--out", "file:///x"}, "--to is required"},
		{"to before from", []string{"--from", to, "--to", from, "--out", "file:///x"}, "bad time range"},
		{"empty range", []string{"--from", from, "--to", from, "--out", "file:///x"}, "bad time range"},
		{"unparsable", []string{"--from", "2026-11-27", "--to", to, "--out", "file:///x"}, "not an RFC 3339 time"},
		{"no out", []string{"--from", from, "--to", to}, "--out is required"},
		{"bad format", []string{"--from", from, "--to", to, "--out", "file:///x", "--format", "xml"}, "--format"},
		{"negative attempts", []string{"--from", from, "--to", to, "--out", "file:///x", "--max-attempts", "-1"}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.args...)
			if !errors.Is(err, ErrJobSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrJobSpec containing %q", err, tc.want)
			}
		})
	}

	t.Run("good", func(t *testing.T) {
		s, err := parse(t, "--from", "2026-11-27T01:00:00+01:00", "--to", to, "--out", "file://./out",
			"--lake", "s3://lake/clicks", "--format", "csv", "--session-timeout", "10m", "--max-attempts", "4")
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		if got := s.GetFrom().AsTime(); !got.Equal(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("from = %v", got)
		}
		if s.GetOutUri() != "file://"+filepath.ToSlash(filepath.Join(wd, "out")) || s.GetLakeUri() != "s3://lake/clicks" {
			t.Errorf("out %q, lake %q", s.GetOutUri(), s.GetLakeUri())
		}
		if s.GetFormat() != pb.OutputFormat_OUTPUT_FORMAT_CSV || s.GetSessionTimeout().AsDuration() != 10*time.Minute || s.GetMaxAttempts() != 4 {
			t.Errorf("spec = %v", s)
		}
	})
}
