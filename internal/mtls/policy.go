package mtls

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Policy maps a full gRPC method name ("/pkg.Service/Method") to the roles
// that may call it. A method it does not name is refused to everyone.
type Policy map[string][]Role

// Authorize returns the identity of ctx's client when its role may call
// method, else a status error: codes.Unauthenticated when the client has
// no trusted identity, codes.PermissionDenied when its role may not.
func (p Policy) Authorize(ctx context.Context, method string) (Identity, error) {
	roles := p[method]
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, status.Errorf(codes.Unauthenticated, "%s: no peer", method)
	}
	ai, ok := pr.AuthInfo.(AuthInfo)
	if !ok {
		return Identity{}, status.Errorf(codes.Unauthenticated, "%s needs mutual TLS", method)
	}
	if ai.Err != nil {
		want := "a certificate of role " + rolesText(roles) + " (URI SAN spiffe://" + TrustDomain + "/<role>/<name>) signed by the cluster CA"
		switch {
		case errors.Is(ai.Err, ErrNoCertificate):
			return Identity{}, status.Errorf(codes.Unauthenticated, "%s: no client certificate: want %s", path.Base(method), want)
		default:
			return Identity{}, status.Errorf(codes.Unauthenticated, "%s: client certificate refused: %v; want %s", path.Base(method), ai.Err, want)
		}
	}
	if !slices.Contains(roles, ai.Identity.Role) {
		if len(roles) == 0 {
			return Identity{}, status.Errorf(codes.PermissionDenied, "%s: %s may not call it: no role may", method, ai.Identity)
		}
		return Identity{}, status.Errorf(codes.PermissionDenied, "%s: %s may not call it: it needs role %s", path.Base(method), ai.Identity, rolesText(roles))
	}
	return ai.Identity, nil
}

func rolesText(roles []Role) string {
	switch len(roles) {
	case 0:
		return "(none)"
	case 1:
		return string(roles[0])
	}
	s := ""
	for i, r := range roles {
		switch {
		case i == 0:
		case i == len(roles)-1:
			s += " or "
		default:
			s += ", "
		}
		s += string(r)
	}
	return s
}

func (p Policy) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	id, err := p.Authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(context.WithValue(ctx, ctxKey{}, id), req)
}

func (p Policy) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	id, err := p.Authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &identityStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), ctxKey{}, id)})
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// String describes the policy's methods and roles, for documentation.
func (p Policy) String() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s: %s\n", k, rolesText(p[k]))
	}
	return s
}
