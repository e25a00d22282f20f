#!/usr/bin/env bash
# make cluster-e2e: up, the add-ons, a Platform, the checks of issues 7, 10,
# 11, 13 and 14 on real pods, then down. Down always runs, even on failure,
# unless KEEP=1. See hack/cluster/README.md for what each step shows.
#
# Traffic goes only to this machine: NodePorts on the bridge address
# 10.244.0.1, the pods' addresses on that bridge, and the cluster's own
# Service addresses. Every load loop is bounded in count and time.
#
# Switches: KEEP=1 (leave the cluster up), REUSE=1 (run on a cluster that is
# up), JAEGER=0 (leave Jaeger out: no build, no install, no trace check; by
# default Jaeger is installed, the Platform exports its traces to it, and an
# order must be one trace there).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/e2e-lib.sh"
cd "$REPO"

NS=demo
PF=shop
RELEASE_NS=switchboard-system
NODE_PORT=${NODE_PORT:-30080}
PROMETHEUS_NODE_PORT=${PROMETHEUS_NODE_PORT:-30090}
JAEGER_NODE_PORT=${JAEGER_NODE_PORT:-31686}
BASE=http://$NODE_IP:$NODE_PORT
PROM=http://$NODE_IP:$PROMETHEUS_NODE_PORT
STREAM_ORDERS=${STREAM_ORDERS:-40}
TIMEOUT=${TIMEOUT:-300s}
RESULTS=$STATE/e2e-results.txt
RUN_ID=$(date +%s)
E2E_T0=$SECONDS
export JAEGER=${JAEGER:-1} # images.sh, called by up.sh, reads it too
ADDONS=(keda prometheus)
[[ $JAEGER == 0 ]] || ADDONS+=(jaeger)

cleanup() {
  local rc=$?
  set +e
  [[ -n ${WATCHER:-} ]] && kill "$WATCHER" 2>/dev/null
  if ((rc != 0)); then
    echo "cluster-e2e: FAILED (exit $rc); state of the cluster:" >&2
    $KUBECTL get pf,deploy,sts,hpa,scaledobject,pvc,pods -A -o wide 2>/dev/null
    $KUBECTL -n $NS describe pf $PF 2>/dev/null | sed -n '/^Status:/,$p' | head -60
    $KUBECTL -n $RELEASE_NS logs deploy/switchboard --tail=60 2>/dev/null
    $KUBECTL get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -40
  fi
  if [[ -n ${KEEP:-} ]]; then
    echo "cluster-e2e: KEEP=1, the cluster stays up (make cluster-down; KUBECONFIG=$KUBECONFIG_FILE)"
  else
    step "cluster-down"
    "$REPO/hack/cluster/down.sh" || rc=1
  fi
  [[ -f $RESULTS ]] && { echo; echo "results:"; cat "$RESULTS"; }
  echo "cluster-e2e: $((SECONDS - E2E_T0))s in all"
  exit $rc
}

mkdir -p "$STATE"
# REUSE=1 runs the checks on a cluster that is already up (e.g. after KEEP=1).
if pid_alive kube-apiserver && [[ -z ${REUSE:-} ]]; then die "a cluster is already up; cluster-e2e starts its own (make cluster-down first, or REUSE=1)"; fi
trap cleanup EXIT
: >"$RESULTS"

# --- add-on binaries (cached; the first build takes long), then the cluster ----
step "add-ons: ${ADDONS[*]} (built once from Go modules into $BIN)"
b0=$SECONDS
nice -n 10 "$REPO/hack/cluster/build-addons.sh" "$BIN" "${ADDONS[@]}"
((SECONDS - b0 > 5)) && result "add-ons built: $((SECONDS - b0))s ($(tr '\n' ';' <"$BIN/build-times"))"

if [[ -n ${REUSE:-} ]] && pid_alive kube-apiserver; then
  result "cluster-up: reused the running cluster (REUSE=1)"
  "$REPO/hack/cluster/images.sh" import
else
  step "cluster-up"
  u0=$SECONDS
  "$REPO/hack/cluster/up.sh" 2>&1 | tee "$STATE/up.log"
  result "cluster-up to ready: $((SECONDS - u0))s ($(grep -oE 'binaries: [0-9]+s' "$STATE/up.log"), $(grep -oE 'images: [0-9]+s' "$STATE/up.log"))"
fi
[[ -x $HELM ]] || make -s helm
(cd "$REPO" && go build -o "$STATE/e2ectl" ./hack/cluster/e2ectl)
E2ECTL=$STATE/e2ectl

# broker.defaultImage: the NATS image built here, so that a Platform without
# spec.broker.image (config/samples, the README's) gets a broker that starts.
step "helm install the chart (image $SWITCHBOARD_IMAGE, never pulled; default broker image $NATS_IMAGE)"
$HELM upgrade --install switchboard charts/switchboard -n $RELEASE_NS --create-namespace \
  --set image.repository=$SWITCHBOARD_REPO --set image.tag=$SWITCHBOARD_TAG --set image.pullPolicy=Never \
  --set broker.defaultImage=$NATS_IMAGE \
  --wait --timeout $TIMEOUT

# KEDA before the Platform, so its lag-scaled services get ScaledObjects at
# once; Prometheus and Jaeger meanwhile. Nobody waits for them here.
step "install KEDA $CLUSTER_KEDA_VERSION (CRDs from its module), Prometheus $CLUSTER_PROMETHEUS_VERSION$([[ $JAEGER == 0 ]] || echo ", Jaeger $CLUSTER_JAEGER_VERSION")"
$KUBECTL apply --server-side -f "$BIN/keda-crds" >/dev/null
addon_manifest() { # file -> stdout, placeholders filled
  sed -e "s#@KEDA_IMAGE@#$KEDA_IMAGE#g" -e "s#@PROMETHEUS_IMAGE@#$PROMETHEUS_IMAGE#g" -e "s#@JAEGER_IMAGE@#$JAEGER_IMAGE#g" \
    -e "s#@PROMETHEUS_NODE_PORT@#$PROMETHEUS_NODE_PORT#g" -e "s#@JAEGER_NODE_PORT@#$JAEGER_NODE_PORT#g" \
    -e "s#@RELEASE_NS@#$RELEASE_NS#g" -e "s#@SCRAPE_INTERVAL@#${SCRAPE_INTERVAL:-5s}#g" "$REPO/hack/cluster/addons/$1"
}
addon_manifest keda.yaml | $KUBECTL apply -f - >/dev/null
addon_manifest prometheus.yaml | $KUBECTL apply -f - >/dev/null
if [[ $JAEGER != 0 ]]; then addon_manifest jaeger.yaml | $KUBECTL apply -f - >/dev/null; fi

workloads=$(go run ./hack/cluster/workloads)
[[ -n $workloads ]] || fail "no workload is fully registered in services/registry"
result "workloads: [$workloads] (from services/registry)"

# --- the Platform --------------------------------------------------------------
step "apply Platform $NS/$PF: [$workloads], 3 brokers on 3 local PVs, gateway NodePort $NODE_PORT"
$KUBECTL create namespace $NS --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
# Small CPU requests: two Platforms, KEDA and Prometheus share 2 cores.
# The gateway (HPA on CPU) and analytics (KEDA: lag, and CPU) keep 50m,
# so CPU alone does not scale them for nothing.
cat >"$STATE/platform.yaml" <<YAML
apiVersion: platform.switchboard.dev/v1alpha1
kind: Platform
metadata: {name: $PF, namespace: $NS}
spec:
  workloads: [$workloads]
  broker:
    replicas: 3
    jetstream: {storage: file, size: 1Gi, storageClassName: local}
    resources:
      requests: {cpu: 30m, memory: 64Mi}
      limits: {memory: 512Mi}
  gateway: {serviceType: NodePort, nodePort: $NODE_PORT}
  networkPolicy:
    metricsFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  defaults:
    resources:
      requests: {cpu: 20m, memory: 64Mi}
      limits: {memory: 256Mi}
  services:
    gateway:
      autoscaling: {minReplicas: 1, maxReplicas: 3, targetCPUUtilizationPercentage: 30}
      resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}
    analytics:
      resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}
YAML
a0=$(date +%s.%N)
$KUBECTL apply -f "$STATE/platform.yaml"
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout $TIMEOUT
result "Platform apply to Ready (3 brokers, both workloads): $(elapsed "$a0")s"
$KUBECTL -n $NS wait pods -l app.kubernetes.io/instance=$PF --for=condition=Ready --timeout 120s >/dev/null
$KUBECTL -n $NS get pf,pods,pvc -o wide
for _ in $(seq 1 60); do curl -fsS --max-time 2 "$BASE/health" >/dev/null 2>&1 && break; sleep 1; done

ADMIN_EMAIL=$($KUBECTL -n $NS get secret $PF-admin -o jsonpath='{.data.email}' | base64 -d)
ADMIN_PASSWORD=$($KUBECTL -n $NS get secret $PF-admin -o jsonpath='{.data.password}' | base64 -d)
ATOKEN=$(json -f -X POST "$BASE/api/user/login" -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | jq -r '.token // empty')
[[ -n $ATOKEN ]] || fail "the admin of Secret $PF-admin ($ADMIN_EMAIL) cannot log in"
email="e2e-$RUN_ID@example.com"
TOKEN=$(signup "$email")
[[ -n $TOKEN ]] || fail "customer login returned no token"
OTHER=$(signup "other-$RUN_ID@example.com")
[[ -n $OTHER ]] || fail "second customer login returned no token"

# --- issue 10: audiences through the NodePort ----------------------------------------
step "issue 10 through the NodePort: what a customer may not do, what the admin ($ADMIN_EMAIL, Secret $PF-admin) may"
o=$(place "first-$RUN_ID" monitor)
[[ $(order_status "$o") == confirmed ]] || fail "first order status '$(order_status "$o")', want confirmed: $o"
oid=$(jq -r .id <<<"$o")
result "order via NodePort: $oid confirmed (gateway -> order over mutual TLS; order -> product, payment over gRPC with mutual TLS; every service but the gateway -> NATS as its own user)"
expect 403 forbidden POST "/api/order/orders/$oid/refund" "$TOKEN" '{"restock":true,"reason":"mine"}' "customer refunds own order (admin route)"
expect 404 unknown_route POST "/api/payment/payments/$oid/refund" "$TOKEN" '{}' "customer refunds through payment (internal)"
expect 404 unknown_route POST "/api/payment/payments" "$TOKEN" '{"orderId":"x","userId":"y","amount":1}' "customer charges (internal)"
expect 403 forbidden PUT "/api/product/stock/monitor" "$TOKEN" '{"available":999999}' "customer sets stock (admin route)"
expect 403 forbidden GET "/api/product/stock/monitor" "$TOKEN" "" "customer reads stock (admin route)"
expect 404 unknown_route POST "/api/product/stock/monitor/reservations" "$TOKEN" '{"orderId":"x","quantity":1}' "customer reserves stock (internal)"
expect 404 unknown_route POST "/api/product/stock/monitor/reservations/$oid/commit" "$TOKEN" '{}' "customer commits a reservation (internal)"
expect 403 forbidden POST "/api/product/products" "$TOKEN" '{"name":"Free","category":"x","price":1,"stock":1}' "customer creates a product (admin route)"
expect 404 not_found GET "/api/order/orders/$oid" "$OTHER" "" "another customer reads the order"
expect 404 "" GET "/api/payment/payments?orderId=$oid" "$OTHER" "" "another customer reads its payment"
expect 401 "" GET "/api/order/orders" "" "" "no token"
expect 200 "" PUT "/api/product/stock/notebook" "$ATOKEN" '{"available":1000}' "admin sets stock"
[[ $(stock notebook | jq .available) == 1000 ]] || fail "admin set notebook's stock to 1000; it reads $(stock notebook)"
read -r ma0 mr0 ms0 mt0 mk0 <<<"$(stock_sum monitor)"
code=$(call POST "/api/order/orders/$oid/refund" "$ATOKEN" '{"restock":true,"reason":"e2e staff refund"}')
[[ $code == 200 || $code == 202 ]] || fail "admin staff refund answered $code: $(cat "$STATE/body")"
for ((t = 0; t < 60; t++)); do
  os=$(json -f "$BASE/api/order/orders/$oid" -H "Authorization: Bearer $TOKEN" | jq -r .status)
  ps=$(json -f "$BASE/api/payment/payments?orderId=$oid" -H "Authorization: Bearer $TOKEN" | jq -r .status)
  read -r ma1 mr1 ms1 mt1 mk1 <<<"$(stock_sum monitor)"
  [[ $os == refunded && $ps == refunded && $ma1 == $((ma0 + 1)) && $mk1 == $((mk0 + 1)) ]] && break
  sleep 1
done
[[ $os == refunded && $ps == refunded ]] || fail "after the staff refund: order $os, payment $ps (want refunded, refunded)"
[[ $ma1 == $((ma0 + 1)) && $mk1 == $((mk0 + 1)) && $ms1 == "$ms0" && $mr1 == 0 && $mt1 == "$mt0" ]] ||
  fail "staff refund with restock: monitor available $ma0 -> $ma1, restocked $mk0 -> $mk1, sold $ms0 -> $ms1, reserved $mr1, stock set $mt0 -> $mt1"
result "issue 10 via NodePort: customer refused refund (403), payment refund/charge (404 unknown_route), stock set/read (403), reserve/commit (404 unknown_route), product creation (403), another's order and payment (404); admin set stock (200) and staff-refunded order $oid ($code): order refunded, payment refunded, monitor restocked (available $ma0 -> $ma1, restocked $mk0 -> $mk1, sold stays $ms1) in ${t}s"

if [[ $workloads == *streaming* ]]; then
  step "streaming through the NodePort: sign up, log in, start a playback session, /live shows the viewer"
  semail="viewer-$(date +%s)@example.com"
  json -f -X POST "$BASE/api/account/accounts" -d "{\"email\":\"$semail\",\"password\":\"correct-horse\",\"plan\":\"basic\"}" >/dev/null
  STOKEN=$(json -f -X POST "$BASE/api/account/login" -d "{\"email\":\"$semail\",\"password\":\"correct-horse\"}" | jq -r '.token // empty')
  [[ -n $STOKEN ]] || fail "account login returned no token"
  session=""
  for ((t = 0; t < 60; t++)); do # the demo library may still be encoding right after Ready
    r=$(json -X POST "$BASE/api/playback/sessions" -H "Authorization: Bearer $STOKEN" -d '{"contentId":"big-buck-bunny","region":"eu"}' || true)
    session=$(jq -r '.sessionId // empty' <<<"$r" 2>/dev/null || true)
    [[ -n $session ]] && break
    sleep 1
  done
  echo "$r"
  [[ -n $session ]] || fail "no playback session started: $r"
  json -f -X POST "$BASE/api/playback/sessions/$session/heartbeat" -H "Authorization: Bearer $STOKEN" \
    -d '{"positionSec":42,"bandwidthKbps":8000,"bufferSec":20}' >/dev/null
  viewers=0
  for ((t = 0; t < 60; t++)); do
    live=$(json -f "$BASE/api/analytics/live" -H "Authorization: Bearer $STOKEN" || true)
    viewers=$(jq -r '.videos["big-buck-bunny"] // 0' <<<"$live" 2>/dev/null || echo 0)
    ((viewers >= 1)) && break
    sleep 1
  done
  echo "live: $live"
  ((viewers >= 1)) || fail "/live does not show the viewer: $live"
  json -f -X DELETE "$BASE/api/playback/sessions/$session" -H "Authorization: Bearer $STOKEN" >/dev/null || true
  result "streaming: playback session $session started (gateway -> playback over mutual TLS; playback -> account, content over gRPC), /live showed $viewers viewer(s) of big-buck-bunny after ${t}s (playback -> NATS -> analytics)"
fi


# --- issue 11: identities on real pods ---------------------------------------------------
step "issue 11: certificates and broker users per service; in real pods, payment's Charge refuses notification"
[[ $(cond $NS $PF CertificatesReady status) == True ]] || fail "CertificatesReady: $(cond $NS $PF CertificatesReady message)"
nsvc=0
for d in $($KUBECTL -n $NS get deploy -l app.kubernetes.io/instance=$PF -o name); do
  svc=${d#deployment.apps/$PF-}
  spec=$($KUBECTL -n $NS get "$d" -o json)
  tls=$(jq -r '.spec.template.spec.volumes[]? | select(.secret) | .secret.secretName' <<<"$spec" | grep -x "$PF-$svc-tls" || true)
  [[ -n $tls ]] || fail "$d does not mount its own certificate Secret $PF-$svc-tls"
  users=$(jq -r '[.spec.template.spec.containers[].env[]? | select(.name == "NATS_USER" or .name == "NATS_PASSWORD") | .valueFrom.secretKeyRef.name] | unique | join(",")' <<<"$spec")
  if [[ $svc == gateway ]]; then
    [[ -z $users ]] || fail "the gateway has broker credentials ($users)"
  else
    [[ $users == "$PF-$svc-nats" ]] || fail "$d takes its broker credentials from '$users', want $PF-$svc-nats only"
  fi
  nsvc=$((nsvc + 1))
done
# Who is connected to the broker, as whom: every service as its own user.
connected=""
for p in $(nats_pods $NS $PF); do
  connected+=" $(monitor $NS "$p" '/connz?auth=true&limit=1024' | jq -r '.connections // [] | .[] | .authorized_user // "?"')"
done
connected=$(tr ' ' '\n' <<<"$connected" | grep . | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=" "}')
echo "broker connections by user: $connected"
admin_user=$($KUBECTL -n $NS get secret $PF-auth -o jsonpath='{.data.nats-user}' | base64 -d)
[[ $connected != *"$admin_user×"* ]] || fail "a connection uses the administrative broker user $admin_user"
for d in $($KUBECTL -n $NS get deploy -l app.kubernetes.io/instance=$PF -o name); do
  svc=${d#deployment.apps/$PF-}
  [[ $svc == gateway ]] && continue
  [[ " $connected" == *" $svc×"* ]] || fail "no broker connection as user $svc ($connected)"
done
# The services image has no shell: switchboard grpc-call makes one call with
# the pod's own identity (TLS_DIR) and prints the status.
grpc_call() { # deploy args... -> output (the exit status is the call's)
  $KUBECTL -n $NS exec "deploy/$PF-$1" -c "$1" -- /switchboard grpc-call "${@:2}" 2>&1
}
deny=$(grpc_call notification --service payment --method Charge --request '{"orderId":"e2e-forged","userId":"x","amount":1}' || true)
echo "notification -> payment Charge: $deny"
allow=$(grpc_call order --service payment --method GetStatus --request "{\"orderId\":\"$oid\"}" || true)
echo "order -> payment GetStatus: $allow"
[[ $deny == *"as notification -> PermissionDenied"* ]] || fail "notification's call to payment Charge was not refused with PermissionDenied: $deny"
[[ $allow == *"as order -> OK"* ]] || fail "order's call to payment GetStatus of order $oid did not succeed: $allow"
result "issue 11 gRPC in real pods: notification -> payment Charge: $(grep -o 'PermissionDenied.*' <<<"$deny" | head -1); order -> payment GetStatus: $(grep -o -- '-> [A-Za-z]*' <<<"$allow" | head -1 | cut -c4-)"
result "issue 11: $nsvc services, each with its own certificate Secret (CertificatesReady True) and, but the gateway, its own broker user; broker connections by user: $connected"

# --- issue 13: the JetStream cluster ---------------------------------------------------
step "issue 13: three brokers form one JetStream cluster; every stream and bucket has 3 replicas"
for ((t = 0; t < 60; t++)); do
  msg=$(cond $NS $PF BrokerReady message)
  [[ $msg == *"meta leader"*"3/3 peers current"* ]] && break
  sleep 1
done
echo "BrokerReady: $msg"
[[ $msg == *"meta leader $PF-nats-"*"3/3 peers current"* ]] || fail "BrokerReady does not name the meta leader and 3/3 current peers: $msg"
p0=$(nats_pods $NS $PF | head -1)
jsz=$(monitor $NS "$p0" '/jsz?accounts=true&streams=true&config=true')
meta=$(jq -r '"\(.meta_cluster.leader) size \(.meta_cluster.cluster_size)"' <<<"$jsz")
# Each stream as its leader sees it: only the leader knows whether its
# followers are current.
# (The broker's server names are its pods'.)
led=$(for p in $(nats_pods $NS $PF); do monitor $NS "$p" '/jsz?accounts=true&streams=true&config=true' | jq --arg me "$p" '. + {me: $me}'; done |
  jq -s '[.[] | .me as $me | .account_details[]?.stream_detail[]? | select(.cluster.leader == $me)]')
streams=$(jq -r 'map("\(.name):R\(.config.num_replicas)") | sort | join(" ")' <<<"$led")
nstreams=$(jq '[.[].name] | unique | length' <<<"$led")
all=$(jq '[.account_details[]?.stream_detail[]? | .name] | length' <<<"$jsz")
notr3=$(jq -r '[.[] | select(.config.num_replicas != 3 or ([.cluster.replicas[]? | select(.current)] | length) != 2) | .name] | join(" ")' <<<"$led")
((nstreams == all)) || fail "$all streams, but only $nstreams have a leader"
echo "meta leader $meta; streams: $streams"
[[ $meta == *"size 3" ]] || fail "the JetStream meta group is not 3 servers: $meta"
((nstreams > 0)) && [[ -z $notr3 ]] || fail "streams without 3 replicas, a leader and 2 current followers: ${notr3:-none found}"
result "JetStream cluster: meta leader $meta; $nstreams streams and KV buckets, all R3 with a leader and 2 current followers: $streams; BrokerReady: $msg"

# --- issue 13: KEDA scales analytics on its backlog (scale-down watched in the background) ------
step "KEDA: analytics' backlog scales it up from its minimum"
$KUBECTL -n keda rollout status deploy/keda-operator deploy/keda-metrics-apiserver --timeout 240s
$KUBECTL wait apiservice v1beta1.external.metrics.k8s.io --for=condition=Available --timeout 120s
$KUBECTL -n $NS wait scaledobject/$PF-analytics --for=condition=Ready --timeout 120s
hpa=keda-hpa-$PF-analytics
for ((t = 0; t < 60; t++)); do $KUBECTL -n $NS get hpa $hpa >/dev/null 2>&1 && break; sleep 1; done
amin=$($KUBECTL -n $NS get scaledobject $PF-analytics -o jsonpath='{.spec.minReplicaCount}')
amax=$($KUBECTL -n $NS get scaledobject $PF-analytics -o jsonpath='{.spec.maxReplicaCount}')
athr=$($KUBECTL -n $NS get scaledobject $PF-analytics -o jsonpath='{.spec.triggers[?(@.type=="nats-jetstream")].metadata.lagThreshold}')
astream=$($KUBECTL -n $NS get scaledobject $PF-analytics -o jsonpath='{.spec.triggers[?(@.type=="nats-jetstream")].metadata.stream}')
for ((t = 0; t < 120; t++)); do
  [[ $($KUBECTL -n $NS get deploy $PF-analytics -o jsonpath='{.status.readyReplicas}') == "$amin" ]] && break
  sleep 1
done
$KUBECTL -n $NS get scaledobject,hpa
NATS_ADMIN_PASSWORD=$($KUBECTL -n $NS get secret $PF-auth -o jsonpath='{.data.nats-password}' | base64 -d)
BROKER_URL=nats://$($KUBECTL -n $NS get svc $PF-nats -o jsonpath='{.spec.clusterIP}'):4222
# The watcher: every 2 s, the Deployment's replicas, KEDA's HPA and the lag.
: >"$STATE/analytics.log"
(
  while :; do
    r=$($KUBECTL -n $NS get deploy $PF-analytics -o jsonpath='{.spec.replicas} {.status.readyReplicas}' 2>/dev/null || echo "? ?")
    h=$($KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.desiredReplicas}' 2>/dev/null || echo "?")
    l=$(consumer_lag $NS $PF "$astream" analytics 2>/dev/null || echo "?")
    echo "$(date +%s.%N) $r ${h:-?} ${l:-?}" >>"$STATE/analytics.log"
    sleep 2
  done
) &
WATCHER=$!
# Hold analytics' deliveries while playback events arrive, so they wait as
# its backlog; the pause ends by itself after 150 s at the latest.
$E2ECTL consumer-pause --nats "$BROKER_URL" --user "$admin_user" --password "$NATS_ADMIN_PASSWORD" --stream "$astream" --consumer analytics --for 150s
k0=$(date +%s.%N)
$E2ECTL playback-load --base "$BASE" --accounts 8 --rounds 20 | tee "$STATE/playback-load.txt"
loaded=$(elapsed "$k0")
up_at="" peak=$amin
for ((t = 0; t < 120; t++)); do
  read -r _ want _ _ _ <<<"$(tail -1 "$STATE/analytics.log")"
  [[ $want =~ ^[0-9]+$ ]] && ((want > peak)) && peak=$want
  [[ -z $up_at && $want =~ ^[0-9]+$ ]] && ((want > amin)) && up_at=$(elapsed "$k0")
  [[ -n $up_at ]] && ((peak >= amax)) && break
  [[ -n $up_at && $(echo "$(date +%s.%N) - $k0 - $up_at > 30" | bc) == 1 ]] && break
  sleep 2
done
[[ -n $up_at ]] || fail "analytics did not scale up from $amin within 240s of a backlog ($(tail -3 "$STATE/analytics.log"))"
$KUBECTL -n $NS rollout status deploy/$PF-analytics --timeout 120s >/dev/null
ready_at=$(elapsed "$k0")
# The HPA's own record, when it has one: when it first asked for more than
# the minimum, and the most it asked for.
# (Events are written a few seconds after the fact on a loaded machine.)
for ((t = 0; t < 15; t++)); do
  ev=$(rescales $NS $hpa "$k0" | awk -v m="$amin" '$2 > m' || true)
  [[ -n $ev ]] && break
  sleep 2
done
if [[ -n $ev ]]; then
  up_at=$(echo "$(head -1 <<<"$ev" | cut -d' ' -f1) - $k0" | bc | xargs printf '%.1f')
  peak=$(awk '$2 > p {p = $2} END {print p}' <<<"$ev")
  echo "KEDA's HPA rescaled: $(tr '\n' ';' <<<"$ev")"
fi
lagmax=$(awk '$5 ~ /^[0-9]+$/ && $5 > m {m = $5} END {print m + 0}' "$STATE/analytics.log")
$E2ECTL consumer-resume --nats "$BROKER_URL" --user "$admin_user" --password "$NATS_ADMIN_PASSWORD" --stream "$astream" --consumer analytics
resumed=$(date +%s.%N)
$KUBECTL -n $NS get hpa $hpa
result "KEDA scale-up: $(tail -1 "$STATE/playback-load.txt" | awk '{print $2}') playback events in ${loaded}s with analytics paused; backlog peaked at $lagmax (threshold $athr per replica); replicas $amin -> $peak (max $amax) asked ${up_at}s after the burst began, all ready at ${ready_at}s"

# --- issue 13: a broker pod deleted while orders flow ---------------------------------------------
step "delete the JetStream meta leader's pod while $STREAM_ORDERS orders flow"
read -r _ _ _ total0 _ <<<"$(stock_sum notebook)"; sold0=$(stock notebook | jq .sold)
leader=$(monitor $NS "$p0" '/jsz' | jq -r .meta_cluster.leader)
[[ $leader == $PF-nats-* ]] || leader=$PF-nats-0
pv0=$($KUBECTL -n $NS get pvc data-$leader -o jsonpath='{.spec.volumeName}')
uid0=$($KUBECTL -n $NS get pod "$leader" -o jsonpath='{.metadata.uid}')
order_stream failover notebook "$STREAM_ORDERS" 0.3 &
stream=$!
for ((t = 0; t < 60; t++)); do (($(wc -l <"$STATE/failover.log") >= 8)) && break; sleep 0.5; done
before=$(wc -l <"$STATE/failover.log")
d0=$(date +%s.%N)
$KUBECTL -n $NS delete pod "$leader" --wait=false
for ((t = 0; t < 120; t++)); do
  uid=$($KUBECTL -n $NS get pod "$leader" -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
  [[ -n $uid && $uid != "$uid0" ]] && break; sleep 0.5
done
$KUBECTL -n $NS wait pod/"$leader" --for=condition=Ready --timeout 180s >/dev/null
back=$(elapsed "$d0")
during=$(awk -v a="$d0" -v b="$(date +%s.%N)" '$3 >= a && $3 <= b' "$STATE/failover.log" | wc -l)
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout 180s >/dev/null
for ((t = 0; t < 60; t++)); do
  msg=$(cond $NS $PF BrokerReady message)
  [[ $msg == *"3/3 peers current"* ]] && break
  sleep 1
done
recovered=$(elapsed "$d0")
wait $stream
pv1=$($KUBECTL -n $NS get pvc data-$leader -o jsonpath='{.spec.volumeName}')
[[ $pv0 == "$pv1" ]] || fail "$leader's claim moved from $pv0 to $pv1"
settle_stream failover notebook "$STREAM_ORDERS" "$total0" "$sold0"
retries=$(wc -l <"$STATE/failover.retries")
newleader=$(monitor $NS "$(nats_pods $NS $PF | head -1)" '/jsz' | jq -r .meta_cluster.leader)
result "broker failover: meta leader $leader deleted after $before of $STREAM_ORDERS orders; $during orders accepted while it was away, $retries refusals retried, longest wait between two accepted orders $(longest_gap failover)s; pod back Ready on the same PV ($pv1) in ${back}s, BrokerReady 3/3 peers current in ${recovered}s (meta leader now $newleader); every order final ($CONF confirmed, $CANC cancelled), notebook stock conserved, reserved 0"

# --- issue 13: a rolling restart of the broker while orders flow -------------------------------------
step "rolling restart of the broker (spec.broker.resources) while orders flow"
read -r _ _ _ total0 _ <<<"$(stock_sum espresso)"; sold0=$(stock espresso | jq .sold)
rev0=$($KUBECTL -n $NS get sts $PF-nats -o jsonpath='{.status.currentRevision}')
ROLL_ORDERS=${ROLL_ORDERS:-60}
order_stream rolling espresso "$ROLL_ORDERS" 0.5 &
stream=$!
for ((t = 0; t < 60; t++)); do (($(wc -l <"$STATE/rolling.log") >= 5)) && break; sleep 0.5; done
r0=$(date +%s.%N)
$KUBECTL -n $NS patch pf $PF --type merge -p '{"spec":{"broker":{"resources":{"requests":{"cpu":"30m","memory":"80Mi"},"limits":{"memory":"512Mi"}}}}}'
for ((t = 0; t < 60; t++)); do
  [[ $($KUBECTL -n $NS get sts $PF-nats -o jsonpath='{.status.updateRevision}') != "$rev0" ]] && break; sleep 0.5
done
$KUBECTL -n $NS rollout status sts/$PF-nats --timeout 300s
rolled=$(elapsed "$r0")
wait $stream
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout 180s >/dev/null
settle_stream rolling espresso "$ROLL_ORDERS" "$total0" "$sold0"
mem=$($KUBECTL -n $NS get pods -l app.kubernetes.io/instance=$PF,app.kubernetes.io/component=broker -o jsonpath='{range .items[*]}{.spec.containers[?(@.name=="nats")].resources.requests.memory}{" "}{end}')
[[ $mem == "80Mi 80Mi 80Mi " ]] || fail "after the rollout the broker pods request memory '$mem', want 80Mi each"
result "broker rolling restart: 3 pods replaced one at a time in ${rolled}s while $ROLL_ORDERS orders flowed ($(wc -l <"$STATE/rolling.retries") refusals retried, longest wait between two accepted orders $(longest_gap rolling)s); every order final ($CONF confirmed, $CANC cancelled), espresso stock conserved, reserved 0"

# --- issue 7: the order pod deleted mid-stream; the gateway's CPU HPA --------------------------------
step "delete an order pod in the middle of a stream of $STREAM_ORDERS orders"
read -r _ _ _ total0 _ <<<"$(stock_sum keyboard)"; sold0=$(stock keyboard | jq .sold)
order_stream orderpod keyboard "$STREAM_ORDERS" 0.2 &
stream=$!
for ((t = 0; t < 60; t++)); do (($(wc -l <"$STATE/orderpod.log") >= 5)) && break; sleep 0.5; done
victim=$($KUBECTL -n $NS get pods -l app.kubernetes.io/instance=$PF,app.kubernetes.io/component=order -o name | head -1)
before=$(wc -l <"$STATE/orderpod.log")
$KUBECTL -n $NS delete "$victim" --wait=false
wait $stream
$KUBECTL -n $NS rollout status deploy/$PF-order --timeout 120s >/dev/null
((before < STREAM_ORDERS)) || fail "the stream ended before the order pod was deleted"
settle_stream orderpod keyboard "$STREAM_ORDERS" "$total0" "$sold0"
result "order pod deleted after $before of $STREAM_ORDERS orders: every order final ($CONF confirmed, $CANC cancelled), keyboard stock conserved, reserved 0"

step "load the gateway until its HPA (fed by metrics-server) scales it up"
ghpa=$PF-gateway
g0=$($KUBECTL -n $NS get deploy $ghpa -o jsonpath='{.status.replicas}')
gmax=$($KUBECTL -n $NS get hpa $ghpa -o jsonpath='{.spec.maxReplicas}')
end=$((SECONDS + 180)) scaled="" history="$g0"
if ((g0 >= gmax)); then
  # The orders of the steps before have already scaled it to its maximum:
  # no load can scale it further, so show the HPA's own record of it.
  rescale=$($KUBECTL -n $NS get events --field-selector "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=$ghpa,reason=SuccessfulRescale" \
    -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | tail -1)
  [[ -n $rescale ]] || fail "gateway at $g0 replicas, its HPA's maximum, with no SuccessfulRescale by the HPA"
  util=$($KUBECTL -n $NS get hpa $ghpa -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}')
  scaled=$g0 history="already scaled to its maximum $gmax by the load before (HPA: $rescale)"
  end=$SECONDS
fi
while ((SECONDS < end)); do
  desired=$($KUBECTL -n $NS get hpa $ghpa -o jsonpath='{.status.desiredReplicas}')
  util=$($KUBECTL -n $NS get hpa $ghpa -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}')
  echo "  hpa: cpu ${util:-?}% of request, desired ${desired:-?} replicas"
  [[ ${desired:-0} != "${history##* }" ]] && history="$history -> $desired"
  if ((${desired:-0} > g0)); then scaled=$desired; break; fi
  # One bounded burst: 300 authenticated catalog reads, 8 at a time, at most 20 s.
  timeout 20 curl -s --no-progress-meter --parallel --parallel-max 8 -o /dev/null -H "Authorization: Bearer $TOKEN" \
    "$BASE/api/product/products?i=[1-300]" || true
done
[[ -n $scaled ]] || fail "HPA $ghpa did not scale up from $g0 within 180s"
$KUBECTL -n $NS rollout status deploy/$ghpa --timeout 120s >/dev/null
owners=$($KUBECTL -n $NS get deploy $ghpa --show-managed-fields -o json |
  jq -r '[.metadata.managedFields[] | select(.fieldsV1["f:spec"]["f:replicas"] != null) | .manager] | join(",")')
[[ $owners != *switchboard* ]] || fail "the operator's field manager owns the Deployment's spec.replicas ($owners)"
g1=$($KUBECTL -n $NS get deploy $ghpa -o jsonpath='{.spec.replicas}')
((g1 >= scaled)) || fail "gateway replicas $g1 after the HPA asked for $scaled: something fights the HPA"
result "HPA scale-up: $ghpa replicas $history (cpu ${util}% of request vs target 30%); spec.replicas $g1, owned by: ${owners:-nobody}"

# --- issue 13 §4: every query of the chart's dashboard has data -------------------------------------
step "Prometheus: every query of the chart's Grafana dashboard returns data"
$KUBECTL -n monitoring rollout status deploy/prometheus --timeout 120s >/dev/null
targets=$(curl -fsS "$PROM/api/v1/targets?state=active" | jq -r '[.data.activeTargets[] | select(.labels.namespace == "'$NS'")] | "\(length) targets, \([.[] | select(.health == "up")] | length) up"')
echo "Prometheus: $targets in $NS"
window=${DASHBOARD_WINDOW:-10m}
$E2ECTL dashboard --prometheus "$PROM" --namespace "$NS" --window "$window" | tee "$STATE/dashboard.txt"
result "Prometheus dashboard ($targets in $NS; \$__rate_interval=$window): $(tail -1 "$STATE/dashboard.txt")"

# --- issue 13 §5: any Platform runs here; status says why a pod cannot start -------------------------
step "config/samples/platform.yaml, unchanged, in namespace sample"
$KUBECTL create namespace sample --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
s0=$(date +%s.%N)
$KUBECTL -n sample apply -f config/samples/platform.yaml
sname=$(sed -n 's/^  name: *//p' config/samples/platform.yaml | head -1)
$KUBECTL -n sample wait pf/"$sname" --for=condition=Ready --timeout $TIMEOUT
simg=$($KUBECTL -n sample get sts "$sname-nats" -o jsonpath='{.spec.template.spec.containers[?(@.name=="nats")].image}')
result "config/samples/platform.yaml unchanged: Ready in $(elapsed "$s0")s in namespace sample, broker image $simg (the chart's broker.defaultImage)"
$KUBECTL -n sample delete pf "$sname" --wait=false

step "a Platform whose broker image cannot be pulled: status names the pod and why"
$KUBECTL create namespace broken --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
cat <<YAML | $KUBECTL apply -f -
apiVersion: platform.switchboard.dev/v1alpha1
kind: Platform
metadata: {name: broken, namespace: broken}
spec:
  workloads: [commerce]
  broker: {replicas: 1, image: "switchboard.local/nats:0.0.0-missing", jetstream: {storage: file, size: 1Gi, storageClassName: local}}
  defaults: {resources: {requests: {cpu: 10m, memory: 32Mi}}}
YAML
for ((t = 0; t < 90; t++)); do
  bmsg=$(cond broken broken BrokerReady message)
  [[ $bmsg == *"pod broken-nats-0"*ErrImagePull* ]] && break
  sleep 1
done
echo "BrokerReady: $bmsg"
[[ $bmsg == *"pod broken-nats-0"*ErrImagePull* ]] || fail "BrokerReady does not name pod broken-nats-0 and ErrImagePull: $bmsg"
result "bad broker image: BrokerReady $(cond broken broken BrokerReady reason) after ${t}s: ${bmsg:0:160}…"
$KUBECTL -n broken delete pf broken --wait=false

# --- KEDA: back down once the backlog has drained -----------------------------------------------------
step "KEDA: analytics back to $amin once its backlog has drained (the HPA's 5-minute scale-down stabilization)"
drained_at="" down_at=""
for ((t = 0; t < 450; t += 2)); do
  [[ -z $drained_at ]] && drained_at=$(awk -v r="$resumed" '$1 >= r && $5 == "0" {print $1; exit}' "$STATE/analytics.log")
  if [[ -n $drained_at ]]; then
    # When the HPA set the minimum again (its event), else the watcher's first sample at it.
    down_at=$(rescales $NS $hpa "$drained_at" | awk -v m="$amin" '$2 == m {print $1; exit}' || true)
    [[ -n $down_at ]] || down_at=$(awk -v d="$drained_at" -v m="$amin" '$1 >= d && $2 == m {print $1; exit}' "$STATE/analytics.log")
    [[ -n $down_at ]] && break
  fi
  sleep 2
done
[[ -n $drained_at ]] || fail "analytics' backlog did not drain ($(tail -3 "$STATE/analytics.log"))"
[[ -n $down_at ]] || fail "analytics did not scale back to $amin within 450s of its backlog draining ($(tail -3 "$STATE/analytics.log"))"
kill "$WATCHER" 2>/dev/null; WATCHER=""
result "KEDA scale-down: backlog drained $(printf '%.0f' "$(echo "$drained_at - $resumed" | bc)")s after the consumer resumed; replicas $peak -> $amin $(printf '%.0f' "$(echo "$down_at - $drained_at" | bc)")s after that (HPA default scale-down stabilization 300s; no Platform field sets the ScaledObject's behavior)"

# --- issue 14: an order is one trace in Jaeger -----------------------------------------------------
# After the steps above, so that the rollout the endpoint causes (every
# service's env changes) neither races the broker and HPA checks nor holds
# analytics up while KEDA's HPA scales it down.
if [[ $JAEGER != 0 ]]; then
  OTLP=http://jaeger.tracing.svc.cluster.local:4317
  JAEGER_QUERY=http://$NODE_IP:$JAEGER_NODE_PORT
  TRACE_SERVICES=(gateway order product payment notification)
  # and the consumers of the order's confirmation (issue 14: "the
  # notification and points consumers"), the last spans the order causes.
  TRACE_CONSUMERS=("notification/process order.confirmed" "user/process order.confirmed")
  step "issue 14: $PF exports its traces to Jaeger ($OTLP, sampling 1); one order is one trace with spans of ${TRACE_SERVICES[*]} and order.confirmed's consumers"
  $KUBECTL -n tracing rollout status deploy/jaeger --timeout 120s >/dev/null
  curl -fsS --max-time 5 "$JAEGER_QUERY/api/services" >/dev/null || fail "Jaeger's query API does not answer at $JAEGER_QUERY/api/services"
  j0=$(date +%s.%N)
  $KUBECTL -n $NS patch pf $PF --type merge -p "{\"spec\":{\"observability\":{\"otlpEndpoint\":\"$OTLP\",\"samplingRatio\":\"1\"}}}"
  # The operator renders the endpoint and the sampler into every service's
  # env; each Deployment rolls out.
  deploys=$($KUBECTL -n $NS get deploy -l app.kubernetes.io/instance=$PF -o name)
  for d in $deploys; do
    for ((t = 0; t < 120; t++)); do
      env=$($KUBECTL -n $NS get "$d" -o json | jq -r '.spec.template.spec.containers[].env[]? | "\(.name)=\(.value // "")"')
      grep -qxF "OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP" <<<"$env" && break
      sleep 1
    done
    grep -qxF "OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP" <<<"$env" || fail "$d: no OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP in its env 120s after the patch"
    grep -qxF "OTEL_TRACES_SAMPLER_ARG=1" <<<"$env" || fail "$d: sampler '$(grep OTEL_TRACES_SAMPLER <<<"$env" | tr '\n' ' ')', want ratio 1"
  done
  for d in $deploys; do $KUBECTL -n $NS rollout status "$d" --timeout 300s >/dev/null; done
  $KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout 180s >/dev/null
  rolled=$(elapsed "$j0")
  for _ in $(seq 1 60); do curl -fsS --max-time 2 "$BASE/health" >/dev/null 2>&1 && break; sleep 1; done

  # A customer of its own signs up, logs in and orders, as anyone would:
  # no trace header of ours. Its Idempotency-Key is retried (bounded) while
  # the new pods settle, so the order is placed once.
  temail="trace-$RUN_ID@example.com"
  TTOKEN=$(signup "$temail")
  [[ -n $TTOKEN ]] || fail "customer $temail: sign-up and login returned no token"
  for ((t = 0; t < 30; t++)); do
    o=$(place "trace-$RUN_ID" notebook "$TTOKEN" 2>/dev/null) || o=""
    [[ -n $(order_status "$o") ]] && break
    sleep 1
  done
  placed=$(date +%s.%N)
  [[ $(order_status "$o") == confirmed ]] || fail "the traced order's status is '$(order_status "$o")', want confirmed: ${o:0:300}"
  oid=$(jq -r .id <<<"$o")

  # Order's saga steps carry order.id: Jaeger finds the trace by it. The
  # trace is complete when it holds spans of every service the order
  # touches, the consumers of its events included.
  tags=$(jq -rn --arg id "$oid" '{"order.id": $id} | tojson | @uri')
  best="" missing="" lines=""
  for ((t = 0; t < 120; t++)); do
    curl -fsS --max-time 5 "$JAEGER_QUERY/api/traces?service=order&tags=$tags&lookback=1h&limit=20" >"$STATE/jaeger-search.json" 2>/dev/null ||
      echo '{}' >"$STATE/jaeger-search.json"
    lines=$(jaeger_traces "$STATE/jaeger-search.json")
    # The trace with the most services.
    best=$(awk 'NF {print split($NF, a, ","), $0}' <<<"$lines" | sort -rn | head -1 | cut -d' ' -f2-)
    missing=""
    for s in "${TRACE_SERVICES[@]}"; do [[ ",${best##* }," == *",$s×"* ]] || missing+=" $s"; done
    for c in "${TRACE_CONSUMERS[@]}"; do jaeger_has_span "$STATE/jaeger-search.json" "${best%% *}" "${c%%/*}" "${c#*/}" || missing+=" ${c%%/*}'s \"${c#*/}\""; done
    [[ -n $best && -z $missing ]] && break
    sleep 1
  done
  complete=$(elapsed "$placed")
  [[ -n $best ]] || fail "Jaeger holds no trace with order.id=$oid 120s after the order (services it knows: $(curl -fsS --max-time 5 "$JAEGER_QUERY/api/services" | jq -c .data))"
  [[ -z $missing ]] ||
    fail "order $oid: no trace in Jaeger holds spans of every one of ${TRACE_SERVICES[*]} and order.confirmed's consumers after 120s; missing from the fullest:$missing; traces with its order.id (id spans roots ms errors services): $(tr '\n' ';' <<<"$lines")"
  read -r tid _ <<<"$best"
  curl -fsS --max-time 5 "$JAEGER_QUERY/api/traces/$tid" >"$STATE/jaeger-trace.json" || fail "Jaeger's /api/traces/$tid does not answer"
  read -r _ nspans roots dur nerr services <<<"$(jaeger_traces "$STATE/jaeger-trace.json")"
  [[ -n $services ]] || fail "Jaeger's /api/traces/$tid holds no trace, though its search found it"
  jaeger_waterfall "$STATE/jaeger-trace.json" | tee "$STATE/jaeger-waterfall.txt"
  result "issue 14, Jaeger $CLUSTER_JAEGER_VERSION: otlpEndpoint $OTLP, samplingRatio 1 on $PF: $(wc -w <<<"$deploys") Deployments rolled out, Ready in ${rolled}s; order $oid (confirmed) is trace $tid, complete in Jaeger ${complete}s after the order was answered: $nspans spans ($services), $roots root span(s), $nerr with status error, ${dur} ms from first span start to last span end; $(grep -c . <<<"$lines") trace(s) carry its order.id"
fi

step "kubectl get pf: READY, SERVICES and BROKER match the pods"
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout 180s >/dev/null
$KUBECTL -n $NS get pf
read -r _ ready services broker _ <<<"$($KUBECTL -n $NS get pf $PF --no-headers)"
ndeploy=$($KUBECTL -n $NS get deploy -l app.kubernetes.io/instance=$PF --no-headers | wc -l)
nready=$($KUBECTL -n $NS get deploy -l app.kubernetes.io/instance=$PF --no-headers | awk '{split($2, a, "/"); if (a[1] > 0 && a[1] == a[2]) n++} END {print n+0}')
nats=$($KUBECTL -n $NS get sts $PF-nats -o jsonpath='{.status.readyReplicas}/{.spec.replicas}')
[[ $ready == True && $services == "$nready/$ndeploy" && $broker == "$nats" ]] ||
  fail "get pf shows READY=$ready SERVICES=$services BROKER=$broker; pods say $nready/$ndeploy and $nats"
result "get pf: READY=$ready SERVICES=$services BROKER=$broker, matching the pods"

step "pod restarts"
$KUBECTL get pods -A -o custom-columns='NAMESPACE:.metadata.namespace,POD:.metadata.name,READY:.status.containerStatuses[*].ready,RESTARTS:.status.containerStatuses[*].restartCount' | tee "$STATE/restarts.txt"
result "pod restarts: $(awk 'NR > 1 {split($4, r, ","); for (i in r) s += r[i]} END {print s+0}' "$STATE/restarts.txt") in total (table above)"
result "cluster-e2e checks: PASSED in $((SECONDS - E2E_T0))s (before cluster-down)"
