#!/usr/bin/env bash
# scripts/build-function.sh NAME OUT [GOARCH]: build functions/NAME as a Lambda
# `bootstrap` at OUT, the one way every function is built (make build, the
# CDK assets, the size and start-up benchmarks). GOARCH defaults to arm64,
# the functions' Lambda architecture; the start-up benchmark passes the
# host's so it can run the very same build.
#
# Flags: static (no cgo), stripped (-s -w), trimmed paths, no RPC mode in
# aws-lambda-go, and no inlining in the AWS SDK's generated code
# (github.com/aws/...=-l): that code is serializers run once per AWS call,
# where inlining buys nothing measurable but costs ~10% of the binary.
set -euo pipefail
name="${1:?function name}" out="${2:?output path}" arch="${3:-arm64}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$(dirname "$out")"
CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -tags lambda.norpc \
	-gcflags='github.com/aws/...=-l' -ldflags='-s -w' -o "$out" "./functions/$name"
