#!/bin/sh
# Regenerates the Go code of the clickstream protobuf API, reproducibly:
# protoc-gen-go and protoc-gen-go-grpc are pinned by the tool directives of
# go.mod and run through `go tool`; protoc is Debian's protobuf-compiler
# (apt-get install -y protobuf-compiler). The generated files are committed;
# run this (or `make proto`) after editing a .proto file.
set -eu
cd "$(dirname "$0")/.."
command -v protoc >/dev/null 2>&1 || {
	echo "proto/gen.sh: protoc not found: apt-get install -y protobuf-compiler" >&2
	exit 1
}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
for f in proto/clickstream/v1/*.proto; do
	protoc -I proto \
		--plugin=protoc-gen-go="$bin/protoc-gen-go" \
		--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		"$f"
done
