#!/usr/bin/env bash
# Builds the local cluster's images without Docker (go-containerregistry, see
# images/main.go) into the cache, as tarballs:
#   switchboard  the Dockerfile's layout, from hack/build-static.sh's binaries (rebuilt every time)
#   nats         nats-server at the version go.mod requires, used through spec.broker.image
#   pause, coredns, metrics-server
#   keda, prometheus, jaeger  when build-addons.sh has built their binaries (jaeger unless JAEGER=0)
# With "import", it also loads them into the cluster's containerd (k8s.io namespace).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
mkdir -p "$IMAGES" "$STATE"
export GOWORK=off CGO_ENABLED=0

builder=$CACHE/tools/images
(cd "$REPO/hack/cluster/images" && go build -trimpath -o "$builder" .)

img() { # name tar args...
  local tar=$1; shift
  "$builder" -o "$IMAGES/$tar" "$@" >/dev/null
}

static=$STATE/static
log "images: switchboard (hack/build-static.sh)"
"$REPO/hack/build-static.sh" "$static" "${VERSION:-cluster}"
img switchboard.tar -switchboard -ref "$SWITCHBOARD_IMAGE" -bin-dir "$static"

if [[ ! -f $IMAGES/nats-${NATS_VERSION}.tar ]]; then
  log "images: nats-server $NATS_VERSION (from go.mod)"
  # Built inside the main module, so it is exactly the version go.mod pins.
  (cd "$REPO" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$CACHE/tools/nats-server" github.com/nats-io/nats-server/v2)
  img "nats-${NATS_VERSION}.tar" -ref "$NATS_IMAGE" -bin "$CACHE/tools/nats-server"
fi
(cd "$REPO/hack/cluster/images" && go build -trimpath -o "$CACHE/tools/dnscheck" ./dnscheck)
if [[ ! -f $IMAGES/pause.tar ]]; then
  (cd "$REPO/hack/cluster/images" && go build -trimpath -ldflags "-s -w" -o "$CACHE/tools/pause" ./pause)
  img pause.tar -ref "$PAUSE_IMAGE" -bin "$CACHE/tools/pause" -user 65535:65535
fi
[[ -f $IMAGES/coredns.tar ]] || img coredns.tar -ref "$COREDNS_IMAGE" -bin "$BIN/coredns"
[[ -f $IMAGES/metrics-server.tar ]] || img metrics-server.tar -ref "$METRICS_SERVER_IMAGE" -bin "$BIN/metrics-server" -user 65534:65534

# Add-ons, once their binaries are built (a tarball older than its binary is rebuilt).
addons=()
addon() { # tar bin... -- image args
  local tar=$1 b; shift
  local bins=() stale=""
  while [[ $1 != -- ]]; do bins+=("$1"); shift; done; shift
  for b in "${bins[@]}"; do [[ -x $b ]] || return 0; [[ $b -nt $IMAGES/$tar ]] && stale=1; done
  if [[ -n $stale || ! -f $IMAGES/$tar ]]; then
    log "images: $tar"
    img "$tar" "${bins[@]/#/-bin=}" "$@"
  fi
  addons+=("${tar%.tar}")
}
addon "keda-${CLUSTER_KEDA_VERSION}.tar" "$BIN/keda" "$BIN/keda-adapter" -- -ref "$KEDA_IMAGE" -user 65532:65532
addon "prometheus-${CLUSTER_PROMETHEUS_VERSION}.tar" "$BIN/prometheus" -- -ref "$PROMETHEUS_IMAGE" -user 65534:65534
# Jaeger unless JAEGER=0 (e2e.sh's switch to leave it out): ~85 MB to import for nothing then.
[[ ${JAEGER:-1} == 0 ]] || addon "jaeger-${CLUSTER_JAEGER_VERSION}.tar" "$BIN/jaeger" -- -ref "$JAEGER_IMAGE" -user 65534:65534

if [[ ${1:-} == import ]]; then
  for t in pause coredns metrics-server "nats-${NATS_VERSION}" switchboard "${addons[@]}"; do
    ctr_k8s images import "$IMAGES/$t.tar" >/dev/null
  done
  log "images imported: $(ctr_k8s images ls -q | grep -c '^switchboard.local/') switchboard.local images"
fi
