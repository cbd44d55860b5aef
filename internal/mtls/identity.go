package mtls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// TrustDomain is the SPIFFE trust domain of clickstream identities.
const TrustDomain = "clickstream"

// Role is what an identity may do.
type Role string

// The roles.
const (
	RoleCoordinator Role = "coordinator"
	RoleWorker      Role = "worker"
	RoleOperator    Role = "operator"
	RoleViewer      Role = "viewer"
)

// Roles lists every role.
var Roles = []Role{RoleCoordinator, RoleWorker, RoleOperator, RoleViewer}

func (r Role) valid() bool {
	for _, k := range Roles {
		if r == k {
			return true
		}
	}
	return false
}

// Identity is who holds a certificate.
type Identity struct {
	Role Role
	Name string
}

// ErrIdentity is matched by the errors of malformed identities.
var ErrIdentity = errors.New("identity")

// NewIdentity returns the identity of role and name, checked.
func NewIdentity(role Role, name string) (Identity, error) {
	id := Identity{Role: role, Name: name}
	if !role.valid() {
		return Identity{}, fmt.Errorf("%w: unknown role %q (want one of %v)", ErrIdentity, role, Roles)
	}
	if err := checkName(name); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// URI returns the identity as its URI SAN.
func (id Identity) URI() string {
	return "spiffe://" + TrustDomain + "/" + string(id.Role) + "/" + id.Name
}

func (id Identity) String() string { return id.URI() }

// ParseIdentity parses spiffe://clickstream/<role>/<name>.
func ParseIdentity(uri string) (Identity, error) {
	rest, ok := strings.CutPrefix(uri, "spiffe://"+TrustDomain+"/")
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q is not spiffe://%s/<role>/<name>", ErrIdentity, uri, TrustDomain)
	}
	role, name, ok := strings.Cut(rest, "/")
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q is not spiffe://%s/<role>/<name>", ErrIdentity, uri, TrustDomain)
	}
	return NewIdentity(Role(role), name)
}

// IdentityOf returns the identity a certificate names: its one URI SAN
// in the clickstream trust domain.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != TrustDomain {
			continue
		}
		id, err := ParseIdentity(u.String())
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Identity{}, fmt.Errorf("%w: the certificate (subject %q) has no URI SAN spiffe://%s/<role>/<name>", ErrIdentity, cert.Subject.CommonName, TrustDomain)
	default:
		return Identity{}, fmt.Errorf("%w: the certificate (subject %q) names %d identities; want one", ErrIdentity, cert.Subject.CommonName, len(found))
	}
}

func checkName(name string) error {
	if name == "" || len(name) > 128 {
		return fmt.Errorf("%w: name %q: want 1 to 128 bytes", ErrIdentity, name)
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '-' && r != '.' && r != '_') {
			return fmt.Errorf("%w: name %q: letters, digits, '.', '_' and '-', starting with a letter or digit", ErrIdentity, name)
		}
	}
	return nil
}
