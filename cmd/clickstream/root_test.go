package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/flagenv"
)

// runArgs runs a command line in this process and returns its exit status,
// stdout and stderr.
func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := runArgs(t, args...)
		if code != 0 || !strings.Contains(out, "clickstream version "+version) {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("CLICKSTREAM_LAKE", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mistyped command", []string{"sumbit"}, "Did you mean this?\n\tsubmit"},
		{"mistyped ingest", []string{"ingets"}, "Did you mean this?\n\tingest"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no command", nil, "missing command"},
		{"bad flag", []string{"vacuum", "--lake", "file:///tmp/x", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{"bad flag value", []string{"vacuum", "--lake", "file:///tmp/x", "--min-age", "soon"}, "--min-age"},
		{"missing required flag", []string{"vacuum"}, "--lake is required"},
		{"missing required flag of run", []string{"run", "--from", "2026-11-27T00:00:00Z", "--to", "2026-11-28T00:00:00Z", "--out", "file:///tmp/x"}, "--lake is required"},
		{"unexpected argument", []string{"gen", "extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runArgs(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want)
			}
			// One message, said once, then where to find help.
			if strings.Count(stderr, "Run '") != 1 || strings.Count(stderr, strings.SplitN(tc.want, "\n", 2)[0]) != 1 {
				t.Errorf("stderr does not say it once:\n%s", stderr)
			}
		})
	}
}

func TestRuntimeErrorExit1(t *testing.T) {
	code, _, stderr := runArgs(t, "status", "--coordinator", "127.0.0.1:1", "--timeout", "1s")
	if code != 1 || !strings.HasPrefix(stderr, "clickstream status: ") || strings.Contains(stderr, "--help") {
		t.Errorf("exit %d, stderr %q; want 1 and one line naming the command", code, stderr)
	}
}

// TestEnvEveryFlag sets CLICKSTREAM_<FLAG> for every flag of every command
// and checks that each lands in its flag, and that a flag given on the
// command line wins over its variable.
func TestEnvEveryFlag(t *testing.T) {
	for _, c := range newRootCmd().Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			// A command tree of its own: persistent flags are shared.
			cmd, _, err := newRootCmd().Find([]string{c.Name()})
			if err != nil {
				t.Fatal(err)
			}
			// Parse as cobra does (the command's own flags and the inherited
			// persistent ones), with one flag on the command line.
			fs := cmd.Flags()
			fs.AddFlagSet(cmd.InheritedFlags())
			values := map[string]string{}
			env := map[string]string{}
			var first string
			fs.VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" {
					return
				}
				v := sampleValue(f)
				values[f.Name] = v
				env[flagenv.Name(envPrefix, f.Name)] = v
				if first == "" && f.Value.Type() == "string" {
					first = f.Name
				}
			})
			if len(values) == 0 {
				return
			}
			var args []string
			if first != "" {
				args = []string{"--" + first, "from-the-command-line"}
			}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			if err := flagenv.Apply(fs, envPrefix, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			fs.VisitAll(func(f *pflag.Flag) {
				want, ok := values[f.Name]
				if !ok {
					return
				}
				if f.Name == first {
					want = "from-the-command-line"
				}
				if !f.Changed {
					t.Errorf("--%s not set", f.Name)
				}
				if f.Value.Type() == "func" || synonyms[f.Name] {
					return // no value to read back; or set by both names
				}
				if got := f.Value.String(); !strings.Contains(got, strings.Trim(want, "[]")) {
					t.Errorf("--%s = %q, want %q", f.Name, got, want)
				}
			})
		})
	}
}

// synonyms are flags bound to the same setting as another flag.
var synonyms = map[string]bool{"index": true, "es-index": true, "es-alias": true}

// sampleValue returns a valid value for f that differs from its default.
func sampleValue(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "bool":
		if f.DefValue == "true" {
			return "false"
		}
		return "true"
	case "int", "int64":
		return "7"
	case "float64":
		return "0.5"
	case "duration":
		return "7m0s"
	}
	switch f.Name {
	case "from", "to", "start", "schedule-start":
		if f.Value.Type() != "string" {
			return "2026-11-27T01:00:00Z"
		}
	case "format":
		if f.Value.Type() != "string" {
			return "ndjson.gz"
		}
	case "log-level":
		return "debug"
	case "log-format":
		return "json"
	}
	return "env-" + f.Name
}

func TestEnvAliases(t *testing.T) {
	t.Setenv("CLICKSTREAM_ETCD_ENDPOINTS", "http://alias:2379")
	t.Setenv("CLICKSTREAM_KAFKA_BROKERS", "alias:9092")
	t.Setenv("CLICKSTREAM_ES_URL", "http://alias:9200")
	root := newRootCmd()
	for _, tc := range []struct{ cmd, flag, want string }{
		{"coordinator", "etcd", "http://alias:2379"},
		{"worker", "etcd", "http://alias:2379"},
		{"ingest", "brokers", "alias:9092"},
		{"index", "es", "alias:9200"},
		{"top", "es", "alias:9200"},
	} {
		cmd, _, err := root.Find([]string{tc.cmd})
		if err != nil {
			t.Fatal(err)
		}
		if err := applyEnv(cmd.Flags()); err != nil {
			t.Fatal(err)
		}
		if f := cmd.Flags().Lookup(tc.flag); !f.Changed && !strings.Contains(aliasValue(t, cmd, tc.flag), tc.want) {
			t.Errorf("%s --%s not set from its alias", tc.cmd, tc.flag)
		}
	}
	// The coordinator indexes only when told to: CLICKSTREAM_ES_URL alone
	// does not set its --es.
	cmd, _, _ := root.Find([]string{"coordinator"})
	if cmd.Flags().Changed("es") {
		t.Error("coordinator --es set from CLICKSTREAM_ES_URL")
	}
}

func aliasValue(t *testing.T, cmd *cobra.Command, name string) string {
	t.Helper()
	return cmd.Flags().Lookup(name).Value.String()
}

// TestCredentialsInAddressesRefused: an address carrying credentials is
// refused by every command that takes one, and never echoed.
func TestCredentialsInAddressesRefused(t *testing.T) {
	const pw = "hunter2"
	s3 := "http://key:" + pw + "@127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"gen brokers", []string{"gen", "--brokers", "user:" + pw + "@127.0.0.1:1", "--events", "1"}},
		{"ingest brokers", []string{"ingest", "--brokers", "a:1,user:" + pw + "@b:1", "--lake", "file:///tmp/x"}},
		{"ingest s3", []string{"ingest", "--brokers", "a:1", "--lake", "s3://lake", "--s3-endpoint", s3}},
		{"worker s3", []string{"worker", "--etcd", "127.0.0.1:1", "--lake-root", "s3://lake", "--output-root", "s3://out", "--s3-endpoint", s3}},
		{"coordinator s3", []string{"coordinator", "--etcd", "127.0.0.1:1", "--s3-endpoint", s3}},
		{"coordinator etcd", []string{"coordinator", "--etcd", "http://root:" + pw + "@127.0.0.1:1"}},
		{"index s3", []string{"index", "--es", "http://127.0.0.1:1", "--results", "s3://out", "--s3-endpoint", s3}},
		{"index es", []string{"index", "--es", "http://elastic:" + pw + "@127.0.0.1:1", "--results", "s3://out"}},
		{"vacuum s3", []string{"vacuum", "--lake", "s3://lake", "--s3-endpoint", "http://key:" + pw + " x@127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, "credentials") || strings.Contains(stdout+stderr, pw) {
				t.Errorf("exit %d, want an error about credentials that hides them:\n%s%s", code, stdout, stderr)
			}
		})
	}
}
