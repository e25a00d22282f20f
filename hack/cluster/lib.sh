# Shared settings of the local one-node cluster (sourced by up.sh, down.sh,
# e2e.sh). Everything the cluster creates on the host is named here, so
# down.sh and its leftover check know exactly what to look for.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
K8S_VERSION=${CLUSTER_K8S_VERSION:-1.37.2}
export CLUSTER_K8S_VERSION=$K8S_VERSION
export CLUSTER_ETCD_VERSION=${CLUSTER_ETCD_VERSION:-v3.6.16}
export CLUSTER_COREDNS_VERSION=${CLUSTER_COREDNS_VERSION:-v1.15.0}
export CLUSTER_METRICS_SERVER_VERSION=${CLUSTER_METRICS_SERVER_VERSION:-v0.8.0}
# Add-ons cluster-e2e installs (build-addons.sh). KEDA is the version go.mod
# requires: the operator renders ScaledObjects from that module's API types.
export CLUSTER_KEDA_VERSION=${CLUSTER_KEDA_VERSION:-$(sed -n 's#^[[:space:]]*github.com/kedacore/keda/v2 \(v[^ ]*\).*#\1#p' "$REPO/go.mod" | head -1)}
export CLUSTER_PROMETHEUS_VERSION=${CLUSTER_PROMETHEUS_VERSION:-v0.316.0}
export CLUSTER_JAEGER_VERSION=${CLUSTER_JAEGER_VERSION:-v1.76.0}
CACHE_ROOT=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard}
CACHE=$CACHE_ROOT/cluster/$K8S_VERSION
BIN=$CACHE/bin
IMAGES=$CACHE/images

STATE=$REPO/.cluster              # in the clone, git-ignored: pids, sysctls, pki, configs, logs, kubeconfig
PIDS=$STATE/pids
LOGS=$STATE/logs
PKI=$STATE/pki
DATA=/var/lib/switchboard-cluster # containerd root, etcd, kubelet root, CNI state, PersistentVolumes
RUN=/run/switchboard-cluster      # containerd state and socket
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
KUBECONFIG_FILE=$STATE/kubeconfig

NODE=switchboard-node
BRIDGE=sbr0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/12
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
API_PORT=6443
ETCD_CLIENT=127.0.0.1:12379
ETCD_PEER=127.0.0.1:12380
# Every sysctl the components may change: the kubelet's kernel tunables, IP
# forwarding (up.sh, the CNI bridge), kube-proxy's conntrack and localnet settings.
SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait
  net.netfilter.nf_conntrack_tcp_be_liberal)
# Each started process, in boot order; down.sh stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

PAUSE_IMAGE=switchboard.local/pause:3.10
COREDNS_IMAGE=switchboard.local/coredns:${CLUSTER_COREDNS_VERSION}
METRICS_SERVER_IMAGE=switchboard.local/metrics-server:${CLUSTER_METRICS_SERVER_VERSION}
SWITCHBOARD_REPO=switchboard.local/switchboard
SWITCHBOARD_TAG=${SWITCHBOARD_TAG:-cluster}
SWITCHBOARD_IMAGE=$SWITCHBOARD_REPO:$SWITCHBOARD_TAG
NATS_VERSION=$(sed -n 's#^[[:space:]]*github.com/nats-io/nats-server/v2 \(v[^ ]*\).*#\1#p' "$REPO/go.mod" | head -1)
NATS_IMAGE=switchboard.local/nats:${NATS_VERSION#v}
# Add-on images (build-addons.sh's binaries; built and imported only once
# those exist): KEDA's operator and metrics API server in one image.
KEDA_IMAGE=switchboard.local/keda:${CLUSTER_KEDA_VERSION#v}
PROMETHEUS_IMAGE=switchboard.local/prometheus:${CLUSTER_PROMETHEUS_VERSION#v}
JAEGER_IMAGE=switchboard.local/jaeger:${CLUSTER_JAEGER_VERSION#v}

export KUBECONFIG=$KUBECONFIG_FILE
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-$REPO/bin/helm}

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
pid_alive() { [[ -f "$PIDS/$1" ]] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }
