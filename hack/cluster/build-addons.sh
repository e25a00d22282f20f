#!/usr/bin/env bash
# Builds, once, the add-ons cluster-e2e installs beside the Platform, from the
# Go modules the proxy serves, into the cache (as build-components.sh does for
# the cluster itself):
#
#   hack/cluster/build-addons.sh <dest-dir> [keda] [prometheus] [jaeger]
#
#   keda, keda-adapter  github.com/kedacore/keda/v2 $CLUSTER_KEDA_VERSION: cmd/operator and
#                       cmd/adapter (the metrics API server the HPA reads KEDA's metrics from)
#   prometheus          github.com/prometheus/prometheus $CLUSTER_PROMETHEUS_VERSION: cmd/prometheus
#   jaeger              github.com/jaegertracing/jaeger $CLUSTER_JAEGER_VERSION: cmd/jaeger (v2, all in one)
#
# Each is built inside a copy of its own module, so with exactly the
# versions its go.mod and go.sum pin, and its replace directives applied
# (KEDA and Jaeger have some, which `go install pkg@version` refuses). The
# version is stamped as their Makefiles do. KEDA's CRDs are copied from the
# same module next to the binaries (<dest>/keda-crds). Seconds per build go
# to <dest>/build-times.
set -euo pipefail

dest=${1:?usage: build-addons.sh <dest-dir> [keda] [prometheus] [jaeger]}
shift
keda_version=${CLUSTER_KEDA_VERSION:?}
prom_version=${CLUSTER_PROMETHEUS_VERSION:?}
jaeger_version=${CLUSTER_JAEGER_VERSION:?}
want=("$@")
((${#want[@]})) || want=(keda prometheus)

mkdir -p "$dest"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local

# module_copy MODULE@VERSION DIR: the module's source, writable, in DIR.
module_copy() {
  local src
  src=$(cd "$work" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -d $src ]] || { echo "build-addons: cannot download $1" >&2; return 1; }
  cp -r "$src" "$2"
  chmod -R u+w "$2"
}

timed() { # name command...
  local name=$1 t0=$SECONDS; shift
  "$@"
  echo "$name $((SECONDS - t0))s $(date +%F)" >>"$dest/build-times"
  echo "$name: built in $((SECONDS - t0))s"
}

build_keda() {
  [[ -x $dest/keda && -x $dest/keda-adapter && -d $dest/keda-crds ]] && return 0
  echo "building keda and keda-adapter ${keda_version} (many minutes the first time)"
  local dir=$work/keda
  module_copy "github.com/kedacore/keda/v2@${keda_version}" "$dir"
  local ld="-s -w -X=github.com/kedacore/keda/v2/version.Version=${keda_version#v} -X=github.com/kedacore/keda/v2/version.GitCommit=module"
  (cd "$dir" && go build -trimpath -ldflags "$ld" -o "$dest/keda" ./cmd/operator &&
    go build -trimpath -ldflags "$ld" -o "$dest/keda-adapter" ./cmd/adapter)
  rm -rf "$dest/keda-crds" && cp -r "$dir/config/crd/bases" "$dest/keda-crds"
}

build_prometheus() {
  [[ -x $dest/prometheus ]] && return 0
  echo "building prometheus ${prom_version} (minutes the first time)"
  local dir=$work/prometheus v
  module_copy "github.com/prometheus/prometheus@${prom_version}" "$dir"
  v=$(cat "$dir/VERSION")
  # Without the builtinassets tag the web UI is left out; the HTTP API,
  # which is all the e2e asks, is there. Of the service discoveries only
  # Kubernetes' is built in (remove_all_sd, enable_kubernetes_sd: the tags
  # of its plugins/ files), which spares compiling the cloud SDKs.
  (cd "$dir" && go build -trimpath -tags "netgo remove_all_sd enable_kubernetes_sd" -o "$dest/prometheus" \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$v -X github.com/prometheus/common/version.Revision=module -X github.com/prometheus/common/version.Branch=${prom_version}" \
    ./cmd/prometheus)
}

build_jaeger() {
  [[ -x $dest/jaeger ]] && return 0
  echo "building jaeger ${jaeger_version} (minutes the first time)"
  local dir=$work/jaeger
  module_copy "github.com/jaegertracing/jaeger@${jaeger_version}" "$dir"
  # The UI's built assets are not in the module; its embed pattern needs a
  # file to match, and the query service then serves its placeholder page.
  # The query API (/api/traces) does not need them.
  touch "$dir/cmd/query/app/ui/actual/.keep"
  (cd "$dir" && go build -trimpath -o "$dest/jaeger" \
    -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=${jaeger_version} -X github.com/jaegertracing/jaeger/internal/version.commitSHA=module" \
    ./cmd/jaeger)
}

for w in "${want[@]}"; do
  case $w in
  keda) [[ -x $dest/keda && -x $dest/keda-adapter && -d $dest/keda-crds ]] || timed "keda ${keda_version}" build_keda ;;
  prometheus) [[ -x $dest/prometheus ]] || timed "prometheus ${prom_version}" build_prometheus ;;
  jaeger) [[ -x $dest/jaeger ]] || timed "jaeger ${jaeger_version}" build_jaeger ;;
  *) echo "build-addons: unknown add-on $w" >&2; exit 2 ;;
  esac
done
