// Package mtls is the cluster's transport security: mutual TLS on every
// gRPC connection, identities taken from certificates, and roles checked
// per RPC.
//
// # Identities
//
// A process is named by one URI SAN in its certificate:
//
//	spiffe://clickstream/<role>/<name>
//
// with role one of coordinator, worker, operator (submits and cancels
// jobs) and viewer (reads status, lists, watches), and name at most 128
// bytes of [A-Za-z0-9._-], starting with a letter or digit. A worker's
// name is its worker id. Host names are not checked: a client checks the identity it expects (any coordinator;
// the worker id it read from the worker's registration), as SPIFFE does.
//
// # Certificates
//
// A Source holds a process's certificate and key and the CA it trusts,
// read from PEM files and read again when the files change (cert-manager
// and similar rotate them in place): every TLS handshake compares the
// files' modification times and sizes, so a rotation takes effect on the
// next connection, while open connections keep theirs. A rotation caught
// half-way (a new certificate with the old key) keeps the previous pair
// until both files agree.
//
// # Authorization
//
// A server verifies the client's certificate after the handshake rather
// than in it, so that a refused client gets a gRPC status saying why
// (codes.Unauthenticated: no certificate, another CA, expired, no
// identity) instead of a bare TLS alert; a Policy then checks the
// identity's role for each method (codes.PermissionDenied) and records the
// identity in the call's context (FromContext).
package mtls
