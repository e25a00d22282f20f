#!/usr/bin/env bash
# make cluster-e2e: up, helm install, the checks of issue 7, then down.
# Down always runs, even on failure, unless KEEP=1.
#
# Traffic goes only to this machine: the gateway's NodePort on the bridge
# address 10.244.0.1, and the cluster's own Service addresses. Every load
# loop is bounded in count and time.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

NS=demo
PF=shop
RELEASE_NS=switchboard-system
NODE_PORT=${NODE_PORT:-30080}
BASE=http://$NODE_IP:$NODE_PORT
STREAM_ORDERS=${STREAM_ORDERS:-40}
TIMEOUT=${TIMEOUT:-300s}
RESULTS=$STATE/e2e-results.txt

step() { printf '\n==> %s\n' "$*"; }
result() { echo "$*" | tee -a "$RESULTS"; }
fail() { result "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)); then
    echo "cluster-e2e: FAILED (exit $rc); state of the cluster:" >&2
    $KUBECTL get pf,deploy,sts,hpa,pvc,pods -A -o wide 2>/dev/null
    $KUBECTL -n $NS describe pf $PF 2>/dev/null | tail -30
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
  exit $rc
}

: >"$STATE/.e2e-probe" 2>/dev/null || mkdir -p "$STATE"
rm -f "$STATE/.e2e-probe"
# REUSE=1 runs the checks on a cluster that is already up (e.g. after KEEP=1).
if pid_alive kube-apiserver && [[ -z ${REUSE:-} ]]; then die "a cluster is already up; cluster-e2e starts its own (make cluster-down first, or REUSE=1)"; fi
trap cleanup EXIT
: >"$RESULTS"

if [[ -n ${REUSE:-} ]] && pid_alive kube-apiserver; then
  result "cluster-up: reused the running cluster (REUSE=1)"
else
  step "cluster-up"
  u0=$SECONDS
  "$REPO/hack/cluster/up.sh" 2>&1 | tee "$STATE/up.log"
  result "cluster-up to ready: $((SECONDS - u0))s ($(grep -oE 'binaries: [0-9]+s' "$STATE/up.log"), $(grep -oE 'images: [0-9]+s' "$STATE/up.log"))"
fi
[[ -x $HELM ]] || make -s helm

# broker.defaultImage: the NATS image built here, so that a Platform without
# spec.broker.image (config/samples, the README's) gets a broker that starts,
# rather than one stuck in ErrImagePull on the official image.
step "helm install the chart (image $SWITCHBOARD_IMAGE, imported into containerd, never pulled; default broker image $NATS_IMAGE)"
$HELM upgrade --install switchboard charts/switchboard -n $RELEASE_NS --create-namespace \
  --set image.repository=$SWITCHBOARD_REPO --set image.tag=$SWITCHBOARD_TAG --set image.pullPolicy=Never \
  --set broker.defaultImage=$NATS_IMAGE \
  --wait --timeout $TIMEOUT
$KUBECTL -n $RELEASE_NS get deploy,pods -o wide

# Both workloads when services/registry registers every service of both.
workloads=$(go run ./hack/cluster/workloads)
[[ -n $workloads ]] || fail "no workload is fully registered in services/registry"
result "workloads: [$workloads] (from services/registry$([[ $workloads == *streaming* ]] || echo '; streaming is not registered: commerce only'))"

step "apply a Platform: [$workloads], gateway NodePort $NODE_PORT, broker on the operator's default image on a local PV"
$KUBECTL create namespace $NS --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
cat >"$STATE/platform.yaml" <<YAML
apiVersion: platform.switchboard.dev/v1alpha1
kind: Platform
metadata: {name: $PF, namespace: $NS}
spec:
  workloads: [$workloads]
  broker:
    replicas: 1
    jetstream: {storage: file, size: 1Gi, storageClassName: local}
  gateway: {serviceType: NodePort, nodePort: $NODE_PORT}
  defaults:
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {memory: 256Mi}
  services:
    # The autoscaled service the HPA check loads: every request crosses it.
    gateway: {autoscaling: {minReplicas: 1, maxReplicas: 3, targetCPUUtilizationPercentage: 30}}
YAML
a0=$(date +%s.%N)
$KUBECTL apply -f "$STATE/platform.yaml"
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout $TIMEOUT
a1=$(date +%s.%N)
$KUBECTL -n $NS wait pods --all --for=condition=Ready --timeout 60s >/dev/null
result "Platform apply to Ready: $(printf '%.1f' "$(echo "$a1 - $a0" | bc)")s"
$KUBECTL -n $NS get pf,pods,pvc -o wide

json() { curl -sS --max-time 10 -H 'Content-Type: application/json' "$@"; }
for _ in $(seq 1 60); do curl -fsS --max-time 2 "$BASE/health" >/dev/null 2>&1 && break; sleep 1; done

step "order through the NodePort $BASE: register, log in, order, expect confirmed"
email="e2e-$(date +%s)@example.com"
json -f -X POST "$BASE/api/user/users" -d "{\"email\":\"$email\",\"name\":\"E2E\",\"password\":\"correct-horse\"}" >/dev/null
TOKEN=$(json -f -X POST "$BASE/api/user/login" -d "{\"email\":\"$email\",\"password\":\"correct-horse\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || fail "login returned no token"
order_status() { jq -r '.status // empty' <<<"$1" 2>/dev/null || true; }
place() { # key product -> response
  json -X POST "$BASE/api/order/orders" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $1" \
    -d "{\"items\":[{\"productId\":\"$2\",\"quantity\":1}],\"paymentMethod\":\"card\",\"shippingAddress\":\"1 Main St\"}"
}
o=$(place "first-$email" monitor)
echo "$o"
[[ $(order_status "$o") == confirmed ]] || fail "first order status '$(order_status "$o")', want confirmed"
result "order via NodePort: confirmed (gateway -> order -> product, payment by cluster DNS; every service -> NATS with credentials)"

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
  result "streaming: playback session $session started (gateway -> playback -> account, content), /live showed $viewers viewer(s) of big-buck-bunny after ${t}s (playback -> NATS -> analytics)"
fi

stock() { json -f "$BASE/api/product/stock/$1" -H "Authorization: Bearer $TOKEN"; }
orders_json() { json -f "$BASE/api/order/orders" -H "Authorization: Bearer $TOKEN"; }
# statuses of the user's orders of one product, one per line
statuses() { orders_json | jq -r --arg p "$1" '.items[] | select(any(.items[]; .productId == $p)) | .status'; }

step "delete the order pod in the middle of a stream of $STREAM_ORDERS orders"
product=notebook
s0=$(stock $product); avail0=$(jq .available <<<"$s0"); echo "stock before: $s0"
: >"$STATE/stream.log"
(
  for i in $(seq 1 "$STREAM_ORDERS"); do
    key="stream-$email-$i"
    # Retry the same Idempotency-Key until the order is accepted (bounded: 90s).
    for ((t = 0; t < 90; t++)); do
      r=$(place "$key" $product 2>/dev/null) || r=""
      s=$(order_status "$r")
      [[ -n $s ]] && { echo "$i $s" >>"$STATE/stream.log"; break; }
      sleep 1
    done
    sleep 0.3
  done
) &
stream=$!
for ((t = 0; t < 60; t++)); do (($(wc -l <"$STATE/stream.log") >= 5)) && break; sleep 0.5; done
victim=$($KUBECTL -n $NS get pods -l app.kubernetes.io/component=order -o name | head -1)
[[ -n $victim ]] || victim=$($KUBECTL -n $NS get pods -o name | grep -- "-order-" | head -1)
before_kill=$(wc -l <"$STATE/stream.log")
echo "deleting $victim after $before_kill of $STREAM_ORDERS orders"
$KUBECTL -n $NS delete "$victim" --wait=false
wait $stream
$KUBECTL -n $NS rollout status deploy/$PF-order --timeout 120s
placed=$(wc -l <"$STATE/stream.log")
((placed == STREAM_ORDERS)) || fail "only $placed of $STREAM_ORDERS stream orders were accepted"
((before_kill < STREAM_ORDERS)) || fail "the stream ended before the order pod was deleted"
# Wait until no stream order is still in flight.
for ((t = 0; t < 120; t++)); do
  st=$(statuses $product) || st=""
  pend=$(grep -cvE '^(confirmed|cancelled)$' <<<"$st" || true)
  [[ -n $st && $pend == 0 ]] && break
  sleep 1
done
conf=$(grep -cx confirmed <<<"$st" || true); canc=$(grep -cx cancelled <<<"$st" || true)
s1=$(stock $product); avail1=$(jq .available <<<"$s1"); res1=$(jq .reserved <<<"$s1"); echo "stock after: $s1"
echo "stream orders: $conf confirmed, $canc cancelled, $pend not final; accepted-while-down: $(awk '{print $2}' "$STATE/stream.log" | sort | uniq -c | tr '\n' ' ')"
((pend == 0 && conf + canc == STREAM_ORDERS)) || fail "$pend of $STREAM_ORDERS orders never reached confirmed or cancelled"
((avail0 - avail1 == conf && res1 == 0)) || fail "stock not conserved: available $avail0 -> $avail1, reserved $res1, confirmed $conf"
result "order pod deleted after $before_kill of $STREAM_ORDERS orders: every order final ($conf confirmed, $canc cancelled), stock $avail0 -> $avail1 (-$conf), reserved 0"
total=$(orders_json | jq '.items | length')

step "delete the NATS pod: it must return on its PersistentVolume with stock and orders intact"
pv0=$($KUBECTL -n $NS get pvc data-$PF-nats-0 -o jsonpath='{.spec.volumeName}')
uid0=$($KUBECTL -n $NS get pod $PF-nats-0 -o jsonpath='{.metadata.uid}')
orders_before=$(orders_json | jq -c '[.items[] | {id, status}] | sort_by(.id)')
nb_before=$(stock $product); mon_before=$(stock monitor)
$KUBECTL -n $NS delete pod $PF-nats-0
for ((t = 0; t < 60; t++)); do
  uid=$($KUBECTL -n $NS get pod $PF-nats-0 -o jsonpath='{.metadata.uid}' 2>/dev/null || true)
  [[ -n $uid && $uid != "$uid0" ]] && break; sleep 1
done
$KUBECTL -n $NS wait pod/$PF-nats-0 --for=condition=Ready --timeout 180s
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout 180s
pv1=$($KUBECTL -n $NS get pvc data-$PF-nats-0 -o jsonpath='{.spec.volumeName}')
[[ $pv0 == "$pv1" ]] || fail "NATS PVC moved from $pv0 to $pv1"
for ((t = 0; t < 60; t++)); do nb_after=$(stock $product 2>/dev/null) && break; sleep 1; done
mon_after=$(stock monitor)
orders_after=$(orders_json | jq -c '[.items[] | {id, status}] | sort_by(.id)')
[[ $nb_before == "$nb_after" && $mon_before == "$mon_after" ]] || fail "stock changed across the NATS restart: $nb_before -> $nb_after, $mon_before -> $mon_after"
[[ $orders_before == "$orders_after" ]] || fail "orders changed across the NATS restart"
o=$(place "after-nats-$email" monitor)
[[ $(order_status "$o") == confirmed ]] || fail "order after NATS restart: '$(order_status "$o")'"
result "NATS pod deleted: back on PV $pv1 (same claim), stock and all $total orders intact, a new order confirmed"

step "load the gateway until its HPA (fed by metrics-server) scales it up"
hpa=$PF-gateway
for ((t = 0; t < 90; t++)); do
  $KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}' 2>/dev/null | grep -q . && break
  sleep 2
done
$KUBECTL top pods -n $NS || true
$KUBECTL -n $NS get hpa $hpa
r0=$($KUBECTL -n $NS get deploy $hpa -o jsonpath='{.status.replicas}')
end=$((SECONDS + 240)) scaled="" history="$r0"
while ((SECONDS < end)); do
  # One bounded burst: 300 authenticated catalog reads (gateway -> product), 8 at a time, at most 20s.
  timeout 20 curl -s --no-progress-meter --parallel --parallel-max 8 -o /dev/null -H "Authorization: Bearer $TOKEN" \
    "$BASE/api/product/products?i=[1-300]" || true
  desired=$($KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.desiredReplicas}')
  util=$($KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}')
  echo "  hpa: cpu ${util:-?}% of request, desired ${desired:-?} replicas"
  [[ ${desired:-0} != "${history##* }" ]] && history="$history -> $desired"
  if ((${desired:-0} > r0)); then scaled=$desired; break; fi
done
[[ -n $scaled ]] || fail "HPA $hpa did not scale up from $r0 within 240s"
$KUBECTL -n $NS rollout status deploy/$hpa --timeout 120s
sleep 20 # the operator reconciles meanwhile; it must leave replicas to the HPA
r1=$($KUBECTL -n $NS get deploy $hpa -o jsonpath='{.spec.replicas}')
ready1=$($KUBECTL -n $NS get deploy $hpa -o jsonpath='{.status.readyReplicas}')
owners=$($KUBECTL -n $NS get deploy $hpa --show-managed-fields -o json |
  jq -r '[.metadata.managedFields[] | select(.fieldsV1["f:spec"]["f:replicas"] != null) | .manager] | join(",")')
$KUBECTL -n $NS get hpa $hpa
$KUBECTL -n $NS describe hpa $hpa | sed -n '/^Events:/,$p'
((r1 >= scaled)) || fail "deployment replicas $r1 after the HPA asked for $scaled: something fights the HPA"
[[ $owners != *switchboard* ]] || fail "the operator's field manager owns the Deployment's spec.replicas ($owners)"
result "HPA scale-up: $hpa replicas $history (cpu ${util}% of request vs target 30%); 20s later spec.replicas $r1, ready $ready1; spec.replicas owned by: ${owners:-nobody}"

step "kubectl get pf: READY, SERVICES and BROKER match the pods"
$KUBECTL -n $NS wait pf/$PF --for=condition=Ready --timeout 180s >/dev/null
$KUBECTL -n $NS get pf
row=$($KUBECTL -n $NS get pf $PF --no-headers)
read -r _ ready services broker _ <<<"$row"
ndeploy=$($KUBECTL -n $NS get deploy -l app.kubernetes.io/instance=$PF --no-headers 2>/dev/null | wc -l)
[[ $ndeploy -gt 0 ]] || ndeploy=$($KUBECTL -n $NS get deploy --no-headers | wc -l)
nready=$($KUBECTL -n $NS get deploy --no-headers | awk '{split($2, a, "/"); if (a[1] > 0 && a[1] == a[2]) n++} END {print n+0}')
nats=$($KUBECTL -n $NS get sts $PF-nats -o jsonpath='{.status.readyReplicas}/{.spec.replicas}')
echo "pods: $nready/$ndeploy deployments fully ready, nats $nats"
[[ $ready == True && $services == "$nready/$ndeploy" && $broker == "$nats" ]] ||
  fail "get pf shows READY=$ready SERVICES=$services BROKER=$broker; pods say $nready/$ndeploy and $nats"
result "get pf: READY=$ready SERVICES=$services BROKER=$broker, matching the pods"

step "pod restarts"
$KUBECTL get pods -A -o custom-columns='NAMESPACE:.metadata.namespace,POD:.metadata.name,READY:.status.containerStatuses[*].ready,RESTARTS:.status.containerStatuses[*].restartCount' | tee "$STATE/restarts.txt"
result "pod restarts: $(awk 'NR > 1 {split($4, r, ","); for (i in r) s += r[i]} END {print s+0}' "$STATE/restarts.txt") in total (table above)"
result "cluster-e2e: PASSED"
