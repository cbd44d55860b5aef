package mtls

import (
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// KeyPair is a certificate and its key read from PEM files, and read again
// when either file changes (its modification time or size), so that a
// certificate rotated in place is used from the next handshake on. A pair
// that fails to load — a rotation caught half-way, a new certificate with
// the old key — keeps the previous one until both files agree.
type KeyPair struct {
	cert, key string

	mu     sync.Mutex
	stamps []stamp
	pair   *tls.Certificate
	err    error // why the files as they are failed to load; nil when pair is theirs
}

// LoadKeyPair reads a certificate and its key.
func LoadKeyPair(cert, key string) (*KeyPair, error) {
	k := &KeyPair{cert: cert, key: key}
	k.reload()
	if k.pair == nil {
		return nil, k.err
	}
	return k, nil
}

// Current returns the pair in use, reading the files again first if they
// changed.
func (k *KeyPair) Current() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reload()
	return k.pair
}

// Err returns why the files last failed to load, or nil when the pair in
// use is theirs.
func (k *KeyPair) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reload()
	return k.err
}

// GetClientCertificate is a tls.Config's GetClientCertificate.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Current(), nil
}

// reload loads the files if they changed; called with k.mu held.
func (k *KeyPair) reload() {
	stamps, err := statFiles(k.cert, k.key)
	if err != nil {
		k.err = err
		return
	}
	if k.pair != nil && slices.Equal(stamps, k.stamps) {
		return
	}
	pair, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err == nil {
		_, err = leafOf(&pair)
	}
	if err != nil {
		k.err = fmt.Errorf("mtls: certificate %s and key %s: %w", k.cert, k.key, err)
		return
	}
	k.pair, k.stamps, k.err = &pair, stamps, nil
}

type stamp struct {
	mod  time.Time
	size int64
}

// statFiles returns the stamps of files.
func statFiles(names ...string) ([]stamp, error) {
	st := make([]stamp, len(names))
	for i, name := range names {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, fmt.Errorf("mtls: %w", err)
		}
		st[i] = stamp{fi.ModTime(), fi.Size()}
	}
	return st, nil
}
