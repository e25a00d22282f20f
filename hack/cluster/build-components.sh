#!/usr/bin/env bash
# Builds, once, every binary the local one-node cluster runs, from pinned Go
# modules, into a cache outside the clone:
#
#   hack/cluster/build-components.sh <dest-dir>
#
#   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy  (k8s.io/kubernetes v$CLUSTER_K8S_VERSION)
#   etcd          (go.etcd.io/etcd/server/v3 $CLUSTER_ETCD_VERSION)
#   coredns       (github.com/coredns/coredns $CLUSTER_COREDNS_VERSION)
#   metrics-server (sigs.k8s.io/metrics-server $CLUSTER_METRICS_SERVER_VERSION)
#
# The Kubernetes recipe is hack/envtest/build.sh's: a small module requiring
# k8s.io/kubernetes with every staging module replaced by its published
# v0.X.Y, and the version stamped with -ldflags. The envtest kube-apiserver and
# etcd, when already built at the same versions, are reused rather than rebuilt.
set -euo pipefail
# shellcheck source=../lib/kubernetes.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/kubernetes.sh"

dest=${1:?usage: build-components.sh <dest-dir>}
k8s_version=${CLUSTER_K8S_VERSION:?}
etcd_version=${CLUSTER_ETCD_VERSION:?}
coredns_version=${CLUSTER_COREDNS_VERSION:?}
ms_version=${CLUSTER_METRICS_SERVER_VERSION:?}
envtest_dir=${ENVTEST_ASSETS:-}
ldflags="-s -w $(kubernetes_ldflags "$k8s_version")"

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
all=("${k8s_bins[@]}" etcd coredns metrics-server)
missing=()
for b in "${all[@]}"; do [[ -x "$dest/$b" ]] || missing+=("$b"); done
[[ ${#missing[@]} -eq 0 ]] && { echo "cluster binaries ready in $dest (cached)"; exit 0; }

mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off
start=$SECONDS

want() { [[ ! -x "$dest/$1" ]]; }

# Reuse the envtest API server and etcd: same module versions, same stamping.
if [[ -n "$envtest_dir" ]]; then
  if want kube-apiserver && [[ -x "$envtest_dir/kube-apiserver" ]] &&
    "$envtest_dir/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes v${k8s_version}"; then
    cp "$envtest_dir/kube-apiserver" "$dest/kube-apiserver"; echo "kube-apiserver: reused $envtest_dir"
  fi
  if want etcd && [[ -x "$envtest_dir/etcd" ]] &&
    "$envtest_dir/etcd" --version 2>/dev/null | grep -q "etcd Version: ${etcd_version#v}$"; then
    cp "$envtest_dir/etcd" "$dest/etcd"; echo "etcd: reused $envtest_dir"
  fi
fi

build_kubernetes() {
  local dir="$work/kubernetes" todo=() b
  for b in "${k8s_bins[@]}"; do want "$b" && todo+=("$b"); done
  [[ ${#todo[@]} -eq 0 ]] && return 0
  echo "building ${todo[*]} v${k8s_version} (minutes the first time)"
  mkdir -p "$dir"
  for b in "${todo[@]}"; do mkdir -p "$dir/$b"; done
  want kube-apiserver && cat >"$dir/kube-apiserver/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
GO
  want kube-controller-manager && cat >"$dir/kube-controller-manager/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() { os.Exit(cli.Run(app.NewControllerManagerCommand())) }
GO
  want kube-scheduler && cat >"$dir/kube-scheduler/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func main() { os.Exit(cli.Run(app.NewSchedulerCommand())) }
GO
  want kubelet && cat >"$dir/kubelet/main.go" <<'GO'
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() { os.Exit(cli.Run(app.NewKubeletCommand(context.Background()))) }
GO
  want kube-proxy && cat >"$dir/kube-proxy/main.go" <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-proxy/app"
)

func main() { os.Exit(cli.Run(app.NewProxyCommand())) }
GO
  (
    cd "$dir"
    go mod init switchboard.local/cluster/kubernetes >/dev/null 2>&1
    kubernetes_module "$dir" "$k8s_version"
    mkdir -p out
    go build -trimpath -ldflags "$ldflags" -o out/ "${todo[@]/#/./}"
    for b in "${todo[@]}"; do mv "out/$b" "$dest/$b"; done
  )
}

build_etcd() {
  want etcd || return 0
  echo "building etcd ${etcd_version}"
  local dir="$work/etcd"; mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod init switchboard.local/cluster/etcd >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@${etcd_version}" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1 &&
    go build -trimpath -ldflags "-s -w" -o "$dest/etcd" .)
}

build_coredns() {
  want coredns || return 0
  echo "building coredns ${coredns_version}"
  local dir="$work/coredns"; mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
package main

import (
	_ "github.com/coredns/coredns/core/plugin"
	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
GO
  (cd "$dir" && go mod init switchboard.local/cluster/coredns >/dev/null 2>&1 &&
    go get "github.com/coredns/coredns@${coredns_version}" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1 &&
    go build -trimpath -ldflags "-s -w" -o "$dest/coredns" .)
}

build_metrics_server() {
  want metrics-server || return 0
  echo "building metrics-server ${ms_version}"
  GOBIN="$work/ms-bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/metrics-server/cmd/metrics-server@${ms_version}"
  mv "$work/ms-bin/metrics-server" "$dest/metrics-server"
}

build_etcd
build_coredns
build_metrics_server
build_kubernetes
for b in "${all[@]}"; do [[ -x "$dest/$b" ]] || { echo "missing $dest/$b" >&2; exit 1; }; done
echo "cluster binaries ready in $dest ($((SECONDS - start))s)"
