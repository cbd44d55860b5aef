// Package flagenv fills command-line flags from environment variables: the
// one path from the environment to a command's configuration.
//
// Every flag --some-flag can come from PREFIX_SOME_FLAG (upper case, '-' as
// '_'); a flag may also have aliases, older variable names that keep
// working (Alias). Apply runs after the command line is parsed and sets only
// the flags it did not give, so the command line wins. Empty variables count
// as unset.
//
//	fs := pflag.NewFlagSet("ingest", pflag.ContinueOnError)
//	cfg.AddFlags(fs)
//	flagenv.Alias(fs, "brokers", "CLICKSTREAM_KAFKA_BROKERS")
//	_ = fs.Parse(os.Args[1:])
//	if err := flagenv.Apply(fs, "CLICKSTREAM", os.LookupEnv); err != nil { ... }
package flagenv

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// aliasAnnotation is the flag annotation that holds a flag's aliases.
const aliasAnnotation = "flagenv-alias"

// skip lists flags that never come from the environment.
var skip = map[string]bool{"help": true, "version": true}

// Name returns the variable of flag name: prefix + "_" + NAME.
func Name(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Alias adds variables that also set flag name, after its own one, and
// names the first in the flag's usage. It panics if fs has no such flag.
func Alias(fs *pflag.FlagSet, name string, vars ...string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("flagenv: no flag --" + name)
	}
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[aliasAnnotation] = append(f.Annotations[aliasAnnotation], vars...)
	f.Usage += " (env " + strings.Join(vars, ", ") + ")"
}

// Apply sets every flag of fs that the command line did not set from the
// first of its variables that lookup finds not empty: PREFIX_<FLAG>, then
// its aliases. An error names the variable and the flag.
func Apply(fs *pflag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || skip[f.Name] {
			return
		}
		for _, name := range append([]string{Name(prefix, f.Name)}, f.Annotations[aliasAnnotation]...) {
			v, ok := lookup(name)
			if !ok || v == "" {
				continue
			}
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("$%s: invalid value %q for --%s: %w", name, v, f.Name, e)
			}
			return
		}
	})
	return err
}
