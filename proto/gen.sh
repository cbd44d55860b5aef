#!/bin/sh
# Regenerates the Go code of the clickstream protobuf API, reproducibly:
# protoc-gen-go and protoc-gen-go-grpc are pinned by the tool directives of
# go.mod and run through `go tool`; protoc is Debian's protobuf-compiler
# (apt-get install -y protobuf-compiler; 3.21.12 on Debian 12, recorded in
# the generated headers). The generated files are committed; run this (or
# `make proto`) after editing a .proto file, and commit the result.
set -eu
cd "$(dirname "$0")/.."
command -v protoc >/dev/null 2>&1 || {
	echo "proto/gen.sh: protoc not found: apt-get install -y protobuf-compiler" >&2
	exit 1
}
# `go tool -n` builds the pinned plugin (cached) and prints its path.
gen_go=$(go tool -n protoc-gen-go)
gen_grpc=$(go tool -n protoc-gen-go-grpc)
for f in proto/clickstream/v1/*.proto; do
	protoc -I proto \
		--plugin=protoc-gen-go="$gen_go" \
		--plugin=protoc-gen-go-grpc="$gen_grpc" \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		"$f"
done
