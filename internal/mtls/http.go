package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
)

// ServerTLSConfig returns the TLS configuration of an HTTPS server that
// serves src's certificate (following its rotations) and asks clients for
// theirs without requiring one: RequireRoles checks it per request, so
// that a handler may also answer clients without a certificate (health
// probes).
func ServerTLSConfig(src *Source) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, _ := src.current()
			return cert, nil
		},
	}
}

// VerifyClient checks a client's certificate chain against src's CA, as
// the gRPC servers do, and returns the identity of its leaf. An empty
// chain is ErrNoCertificate.
func (s *Source) VerifyClient(chain []*x509.Certificate) (Identity, error) {
	return s.verify(chain, x509.ExtKeyUsageClientAuth)
}

// RequireRoles wraps next so that it serves only clients whose
// certificate, verified against src, names one of roles: a request
// without a certificate, or with one that is not trusted, gets 401, and
// an identity of another role 403. The identity is recorded in the
// request's context (FromContext).
func RequireRoles(src *Source, roles []Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var chain []*x509.Certificate
		if r.TLS != nil {
			chain = r.TLS.PeerCertificates
		}
		id, err := src.VerifyClient(chain)
		if err != nil {
			msg := "client certificate refused: " + err.Error()
			if errors.Is(err, ErrNoCertificate) {
				msg = "no client certificate"
			}
			http.Error(w, msg+": want a certificate of role "+rolesText(roles)+" (URI SAN spiffe://"+TrustDomain+"/<role>/<name>) signed by the cluster CA", http.StatusUnauthorized)
			return
		}
		if !slices.Contains(roles, id.Role) {
			http.Error(w, id.String()+" may not see this: it needs role "+rolesText(roles), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}
