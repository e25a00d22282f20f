#!/usr/bin/env bash
# The one static build of the image's binaries. The Dockerfile and
# `make build-static` both run this script, so the image and the local proof
# of its build cannot drift apart.
#
#   hack/build-static.sh OUTDIR VERSION
#
# GOOS and GOARCH pass through from the environment (the Dockerfile sets them
# from buildx's TARGETOS/TARGETARCH).
set -euo pipefail

out=${1:?usage: hack/build-static.sh OUTDIR VERSION}
version=${2:?usage: hack/build-static.sh OUTDIR VERSION}

cd "$(dirname "$0")/.."
export CGO_ENABLED=0
for cmd in manager switchboard; do
	go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "${out}/${cmd}" "./cmd/${cmd}"
done
