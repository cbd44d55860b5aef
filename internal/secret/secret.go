// Package secret holds Secret, a credential that never prints: every way
// of formatting it (fmt verbs, slog, JSON and text marshalling) shows
// "[REDACTED]", or "" when it is empty; Reveal returns the value.
package secret

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Secret is a credential.
type Secret string

const redacted = "[REDACTED]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[REDACTED]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString redacts %#v.
func (s Secret) GoString() string { return fmt.Sprintf("secret.Secret(%q)", s.String()) }

// LogValue redacts the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText redacts the secret in JSON and other encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ErrInAddress is matched by the errors of RefuseInAddresses.
var ErrInAddress = errors.New("credentials in an address")

// RefuseInAddresses returns an error when one of addrs (URLs or
// host:port) carries credentials ("user:password@host"): a process would
// print them wherever it shows the address (logs, errors, status). The
// error names the address by flag (and position in a list), never by its text; how
// says where the credentials go instead.
func RefuseInAddresses(flag, how string, addrs ...string) error {
	for i, a := range addrs {
		if !strings.Contains(a, "@") {
			continue
		}
		which := flag
		if len(addrs) > 1 {
			which = fmt.Sprintf("%s #%d", flag, i+1)
		}
		return fmt.Errorf("%w: %s carries credentials (user@host): %s", ErrInAddress, which, how)
	}
	return nil
}
