#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from Go modules,
# because no download site for prebuilt binaries is reachable from CI.
# The binaries land in a cache outside the clone and are reused across runs.
#
#   hack/envtest/build.sh <dest-dir>
#
# Versions come from the environment so the Makefile is the one place they are pinned.
set -euo pipefail
# shellcheck source=../lib/kubernetes.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/kubernetes.sh"

dest=${1:?usage: build.sh <dest-dir>}
k8s_version=${ENVTEST_K8S_VERSION:?ENVTEST_K8S_VERSION is not set}   # e.g. 1.37.2
etcd_version=${ENVTEST_ETCD_VERSION:?ENVTEST_ETCD_VERSION is not set} # e.g. v3.6.16

if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" ]]; then
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0

build_etcd() {
  local dir="$work/etcd"
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod init envtest/etcd >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@${etcd_version}" >/dev/null &&
    go mod tidy >/dev/null &&
    go build -trimpath -o "$dest/etcd.tmp" . && mv "$dest/etcd.tmp" "$dest/etcd")
}

build_apiserver() {
  local dir="$work/apiserver"
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  (cd "$dir" && go mod init envtest/apiserver >/dev/null 2>&1)
  kubernetes_module "$dir" "$k8s_version"
  (cd "$dir" && go build -trimpath -ldflags "$(kubernetes_ldflags "$k8s_version")" \
    -o "$dest/kube-apiserver.tmp" . && mv "$dest/kube-apiserver.tmp" "$dest/kube-apiserver")
}

[[ -x "$dest/etcd" ]] || { echo "building etcd ${etcd_version} into $dest (about a minute)"; build_etcd; }
[[ -x "$dest/kube-apiserver" ]] || { echo "building kube-apiserver v${k8s_version} into $dest (several minutes the first time)"; build_apiserver; }
echo "envtest binaries ready in $dest"
