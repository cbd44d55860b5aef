package flagenv_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/flagenv"
)

func TestApply(t *testing.T) {
	env := map[string]string{
		"X_LAKE":        "s3://env/lake",
		"X_S3_ENDPOINT": "http://env:1",
		"X_TIMEOUT":     "3s",
		"X_WAIT":        "true",
		"X_EMPTY":       "",
		"OLD_BROKERS":   "old:9092",
		"X_GIVEN":       "from-env",
		"X_HELP":        "true",
		"ALIAS_IGNORED": "x",
		"X_ALIASED":     "own-name-wins",
		"OLD_ALIASED":   "alias-loses",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	lake := fs.String("lake", "", "")
	endpoint := fs.String("s3-endpoint", "", "")
	timeout := fs.Duration("timeout", time.Second, "")
	wait := fs.Bool("wait", false, "")
	empty := fs.String("empty", "default", "")
	brokers := fs.String("brokers", "", "Kafka brokers")
	given := fs.String("given", "", "")
	aliased := fs.String("aliased", "", "")
	help := fs.Bool("help", false, "")
	flagenv.Alias(fs, "brokers", "OLD_BROKERS")
	flagenv.Alias(fs, "aliased", "OLD_ALIASED")
	if err := fs.Parse([]string{"--given", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := flagenv.Apply(fs, "X", lookup); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"lake", *lake, "s3://env/lake"},
		{"s3-endpoint", *endpoint, "http://env:1"},
		{"timeout", timeout.String(), "3s"},
		{"empty", *empty, "default"},
		{"brokers", *brokers, "old:9092"},
		{"given", *given, "from-flag"},
		{"aliased", *aliased, "own-name-wins"},
	} {
		if c.got != c.want {
			t.Errorf("--%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !*wait || *help {
		t.Errorf("wait %v (want true), help %v (want false)", *wait, *help)
	}
	if u := fs.Lookup("brokers").Usage; !strings.Contains(u, "OLD_BROKERS") {
		t.Errorf("usage %q does not name the alias", u)
	}
}

func TestApplyBadValue(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.Int("workers", 1, "")
	err := flagenv.Apply(fs, "X", func(k string) (string, bool) { return "many", k == "X_WORKERS" })
	if err == nil || !strings.Contains(err.Error(), "$X_WORKERS") || !strings.Contains(err.Error(), "--workers") {
		t.Fatalf("err = %v, want it to name $X_WORKERS and --workers", err)
	}
}
