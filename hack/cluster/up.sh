#!/usr/bin/env bash
# make cluster-up: a one-node Kubernetes of the real components, run as host
# processes over containerd, with CoreDNS and metrics-server as pods.
# See hack/cluster/README.md. Undo everything with hack/cluster/down.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t0=$SECONDS

[[ $(id -u) == 0 ]] || die "needs root (containerd, kubelet, iptables, a bridge)"
if [[ -d $PIDS ]] && compgen -G "$PIDS/*" >/dev/null; then
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then
      echo "cluster: already running ($c is PID $(cat "$PIDS/$c")); kubeconfig $KUBECONFIG_FILE. Nothing changed."
      exit 0
    fi
  done
  die "stale state in $PIDS from an earlier cluster; run 'make cluster-down' first"
fi
ip link show "$BRIDGE" >/dev/null 2>&1 && die "bridge $BRIDGE exists: another cluster is up or was not taken down; run 'make cluster-down'"

# --- packages -------------------------------------------------------------
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v conntrack >/dev/null || need+=(conntrack)
command -v socat >/dev/null || need+=(socat)
command -v jq >/dev/null || need+=(jq)         # e2e.sh reads the API's JSON with it
command -v bc >/dev/null || need+=(bc)
command -v iptables >/dev/null || need+=(iptables)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
CNI_BIN=$(dirname "$(dpkg -L containernetworking-plugins | grep '/bridge$' | head -1)")

# --- binaries (cached) ------------------------------------------------------
b0=$SECONDS
ENVTEST_ASSETS=${ENVTEST_ASSETS:-$CACHE_ROOT/envtest/$K8S_VERSION} "$REPO/hack/cluster/build-components.sh" "$BIN"
log "binaries: $((SECONDS - b0))s"

mkdir -p "$PIDS" "$LOGS" "$PKI" "$DATA" "$RUN"
: >"$STATE/started"
ls /run/netns 2>/dev/null >"$STATE/netns.before" || true
nft list tables 2>/dev/null >"$STATE/nft.before" || true # iptables-nft creates tables kube-proxy fills

# --- sysctls: record before anything changes them -----------------------------
if [[ ! -f $STATE/sysctl.saved ]]; then
  for s in "${SYSCTLS[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && echo "$s=$v"
  done >"$STATE/sysctl.saved.tmp"
  mv "$STATE/sysctl.saved.tmp" "$STATE/sysctl.saved"
  sysctl -a 2>/dev/null | sort >"$STATE/sysctl.all.before" || true # for a full comparison after down
fi

start() { # name command...  (records the PID)
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name"
  log "started $name (PID $!)"
}
wait_for() { # what seconds command...
  local what=$1 secs=$2; shift 2
  for ((i = 0; i < secs * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "timed out after ${secs}s waiting for $what (logs in $LOGS)"
}

# --- certificates --------------------------------------------------------------
cert() { # name subject ca [san]
  local name=$1 subj=$2 ca=$3 san=${4:-}
  [[ -f $PKI/$name.crt ]] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n $san ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi; } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial -days 30 \
    -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}
ca() {
  [[ -f $PKI/$1.crt ]] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -out "$PKI/$1.crt" -days 30 -subj "/CN=$2" 2>/dev/null
}
ca ca switchboard-cluster-ca
ca front-proxy-ca switchboard-front-proxy-ca
cert apiserver "/CN=kube-apiserver" ca "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" ca
cert admin "/O=system:masters/CN=admin" ca
cert controller-manager "/CN=system:kube-controller-manager" ca
cert scheduler "/CN=system:kube-scheduler" ca
cert kube-proxy "/CN=system:kube-proxy" ca
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE" ca
cert kubelet "/CN=$NODE" ca "IP:$NODE_IP,DNS:$NODE"
cert front-proxy-client "/CN=front-proxy-client" front-proxy-ca
[[ -f $PKI/sa.key ]] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }

kubeconfig() { # file user
  local f=$STATE/$1.kubeconfig
  $KUBECTL config --kubeconfig "$f" set-cluster local --server "https://$NODE_IP:$API_PORT" --certificate-authority "$PKI/ca.crt" --embed-certs >/dev/null
  $KUBECTL config --kubeconfig "$f" set-credentials "$2" --client-certificate "$PKI/$2.crt" --client-key "$PKI/$2.key" --embed-certs >/dev/null
  $KUBECTL config --kubeconfig "$f" set-context local --cluster local --user "$2" >/dev/null
  $KUBECTL config --kubeconfig "$f" use-context local >/dev/null
}
for u in admin controller-manager scheduler kube-proxy kubelet-client; do kubeconfig "$u" "$u"; done

# --- network: the bridge every address hangs on ----------------------------------
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
sysctl -qw net.ipv4.ip_forward=1
mkdir -p "$DATA/cni/net.d" "$DATA/cni/networks"
cat >"$DATA/cni/net.d/10-switchboard.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "switchboard",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": "$DATA/cni/networks",
             "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.244.0.10", "gateway": "$NODE_IP"}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
JSON

# --- containerd -------------------------------------------------------------------
cat >"$STATE/containerd.toml" <<TOML
version = 2
root = "$DATA/containerd"
state = "$RUN/containerd"
oom_score = 0
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$RUN/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$DATA/cni/net.d"
TOML
start containerd containerd --config "$STATE/containerd.toml"
wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version

i0=$SECONDS
"$REPO/hack/cluster/images.sh" import
log "images: $((SECONDS - i0))s"

# --- control plane ----------------------------------------------------------------------
start etcd "$BIN/etcd" --name "$NODE" --data-dir "$DATA/etcd" \
  --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
  --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
  --initial-cluster "$NODE=http://$ETCD_PEER" --listen-metrics-urls "" --log-level warn
wait_for etcd 30 curl -fsS "http://$ETCD_CLIENT/health"

start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://$ETCD_CLIENT" \
  --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$API_PORT" \
  --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
  --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged=true \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --enable-aggregator-routing=true --profiling=false --v=1
cp "$STATE/admin.kubeconfig" "$KUBECONFIG_FILE"
wait_for kube-apiserver 120 $KUBECTL get --raw /readyz

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
  --controllers '*' --cluster-name switchboard \
  --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false \
  --horizontal-pod-autoscaler-sync-period 10s --profiling=false --v=1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1

# --- node ---------------------------------------------------------------------------------
echo "nameserver $NODE_IP" >"$STATE/resolv.conf" # pods with dnsPolicy Default; nothing answers there, and nothing needs it
cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
serializeImagePulls: false
YAML
start kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet-client.kubeconfig" \
  --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$DATA/kubelet" --v=1

cat >"$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s} # 0: leave the host's conntrack settings alone
nodePortAddresses: [$NODE_IP/32]
YAML
start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml" --v=1

wait_for "node $NODE Ready" 120 $KUBECTL wait node "$NODE" --for condition=Ready --timeout 1s

# --- add-ons: CoreDNS, metrics-server, storage -----------------------------------------------
sed -e "s#@DNS_IP@#$DNS_IP#g" -e "s#@COREDNS_IMAGE@#$COREDNS_IMAGE#g" -e "s#@METRICS_SERVER_IMAGE@#$METRICS_SERVER_IMAGE#g" \
  "$REPO/hack/cluster/addons.yaml" | $KUBECTL apply -f - >/dev/null
"$REPO/hack/cluster/storage.sh"
$KUBECTL -n kube-system rollout status deploy/coredns --timeout 180s >/dev/null
# CoreDNS answers for the API server's Service name, asked on the cluster DNS address.
wait_for "CoreDNS to answer" 90 "$CACHE/tools/dnscheck" -server "$DNS_IP:53" kubernetes.default.svc.cluster.local
log "up in $((SECONDS - t0))s (binaries and images included)"
echo "ready .cluster/kubeconfig"
