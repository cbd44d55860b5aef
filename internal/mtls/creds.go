package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// AuthInfo is what a server knows of a client after the handshake: the
// TLS state, and the client's identity or why it has none.
type AuthInfo struct {
	credentials.TLSInfo
	Identity Identity
	Err      error // non-nil: the client is not authenticated
}

// ServerCredentials returns gRPC transport credentials that serve src's
// certificate and ask the client for its own. The client's certificate is
// verified after the handshake (see AuthInfo), so serve them with a
// Policy: ServerOptions does both.
func ServerCredentials(src *Source) credentials.TransportCredentials {
	return &serverCreds{TransportCredentials: credentials.NewTLS(ServerTLSConfig(src)), src: src}
}

type serverCreds struct {
	credentials.TransportCredentials
	src *Source
}

func (c *serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, ai, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	info, ok := ai.(credentials.TLSInfo)
	if !ok {
		conn.Close()
		return nil, nil, fmt.Errorf("mtls: unexpected auth info %T", ai)
	}
	id, verr := c.src.verify(info.State.PeerCertificates, x509.ExtKeyUsageClientAuth)
	return conn, AuthInfo{TLSInfo: info, Identity: id, Err: verr}, nil
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	return &serverCreds{TransportCredentials: c.TransportCredentials.Clone(), src: c.src}
}

// ServerOptions returns the options of a gRPC server that authenticates
// its clients with src and authorizes each call with p.
func ServerOptions(src *Source, p Policy) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(ServerCredentials(src)),
		grpc.ChainUnaryInterceptor(p.unary),
		grpc.ChainStreamInterceptor(p.stream),
	}
}

// ClientCredentials returns gRPC transport credentials that present src's
// certificate and accept a server whose certificate the CA signed and
// whose identity expect accepts.
func ClientCredentials(src *Source, expect Expectation) credentials.TransportCredentials {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := src.current()
			return cert, nil
		},
		// The chain and the identity are checked in VerifyConnection:
		// servers are known by their SPIFFE identity, not by host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := src.verify(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if err := expect(id); err != nil {
				return err
			}
			return nil
		},
	}
	return credentials.NewTLS(cfg)
}

// DialOption returns the gRPC dial option of ClientCredentials.
func DialOption(src *Source, expect Expectation) grpc.DialOption {
	return grpc.WithTransportCredentials(ClientCredentials(src, expect))
}

// An Expectation accepts or refuses the identity a server presents.
type Expectation func(Identity) error

// ErrWrongPeer is matched by the errors of expectations.
var ErrWrongPeer = errors.New("unexpected peer identity")

// ExpectRole accepts any identity of role r.
func ExpectRole(r Role) Expectation {
	return func(id Identity) error {
		if id.Role != r {
			return fmt.Errorf("%w: the server is %s, want role %s", ErrWrongPeer, id, r)
		}
		return nil
	}
}

// Expect accepts exactly want.
func Expect(want Identity) Expectation {
	return func(id Identity) error {
		if id != want {
			return fmt.Errorf("%w: the server is %s, want %s", ErrWrongPeer, id, want)
		}
		return nil
	}
}

type ctxKey struct{}

// FromContext returns the authenticated identity of a call's client, in
// a server whose Policy admitted the call.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Probe connects to addr and makes a TLS handshake as a client presenting
// src's certificate, the way a gRPC client with ClientCredentials(src,
// expect) would, and closes the connection. It returns the identity the
// server proved, or why the server was refused (a certificate of another
// CA, an identity expect refuses: ErrWrongPeer) or could not be reached.
// ctx bounds the dial and the handshake.
func Probe(ctx context.Context, src *Source, addr string, expect Expectation) (Identity, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Identity{}, err
	}
	var got Identity
	seen := func(id Identity) error {
		got = id
		return expect(id)
	}
	conn, _, err := ClientCredentials(src, seen).ClientHandshake(ctx, addr, raw)
	if err != nil {
		raw.Close()
		return Identity{}, err
	}
	conn.Close()
	return got, nil
}
