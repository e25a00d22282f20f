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
STREAM_ORDERS=${STREAM_ORDERS:-30}
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
pid_alive kube-apiserver && die "a cluster is already up; cluster-e2e starts its own (make cluster-down first)"
trap cleanup EXIT
: >"$RESULTS"

step "cluster-up"
u0=$SECONDS
"$REPO/hack/cluster/up.sh" 2>&1 | tee "$STATE/up.log"
result "cluster-up to ready: $((SECONDS - u0))s ($(grep -o 'binaries: [0-9]*s' "$STATE/up.log"), $(grep -o 'images: [0-9]*s' "$STATE/up.log"))"
[[ -x $HELM ]] || make -s helm

step "helm install the chart (image $SWITCHBOARD_IMAGE, imported into containerd, never pulled)"
$HELM upgrade --install switchboard charts/switchboard -n $RELEASE_NS --create-namespace \
  --set image.repository=$SWITCHBOARD_REPO --set image.tag=$SWITCHBOARD_TAG --set image.pullPolicy=Never \
  --wait --timeout $TIMEOUT
$KUBECTL -n $RELEASE_NS get deploy,pods -o wide

# Streaming runs only if services/registry registers every streaming service.
workloads=commerce
if "$STATE/static/switchboard" serve playback --help >/dev/null 2>&1; then workloads="commerce, streaming"; fi
result "workloads: [$workloads] (streaming is $([[ $workloads == *streaming* ]] && echo registered || echo 'not registered in services/registry: commerce only'))"

step "apply a Platform: [$workloads], gateway NodePort $NODE_PORT, broker $NATS_IMAGE on a local PV"
$KUBECTL create namespace $NS --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
cat >"$STATE/platform.yaml" <<YAML
apiVersion: platform.switchboard.dev/v1alpha1
kind: Platform
metadata: {name: $PF, namespace: $NS}
spec:
  workloads: [$workloads]
  broker:
    replicas: 1
    image: $NATS_IMAGE
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
order_status() { grep -o '"status":"[^"]*"' <<<"$1" | head -1 | cut -d'"' -f4; }
place() { # key product -> response
  json -X POST "$BASE/api/order/orders" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $1" \
    -d "{\"items\":[{\"productId\":\"$2\",\"quantity\":1}],\"paymentMethod\":\"card\",\"shippingAddress\":\"1 Main St\"}"
}
o=$(place "first-$email" monitor)
echo "$o"
[[ $(order_status "$o") == confirmed ]] || fail "first order status '$(order_status "$o")', want confirmed"
result "order via NodePort: confirmed (gateway -> order -> product, payment by cluster DNS; every service -> NATS with credentials)"

stock() { json -f "$BASE/api/product/stock/$1"; }
field() { grep -o "\"$1\":[0-9-]*" <<<"$2" | head -1 | cut -d: -f2; }
orders_json() { json -f "$BASE/api/order/orders" -H "Authorization: Bearer $TOKEN"; }
count_status() { grep -o "\"status\":\"$1\"" <<<"$2" | wc -l; }

step "delete the order pod in the middle of a stream of $STREAM_ORDERS orders"
product=notebook
s0=$(stock $product); avail0=$(field available "$s0"); echo "stock before: $s0"
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
  done
) &
stream=$!
sleep 3
victim=$($KUBECTL -n $NS get pods -l app.kubernetes.io/component=order -o name | head -1)
[[ -n $victim ]] || victim=$($KUBECTL -n $NS get pods -o name | grep -- "-order-" | head -1)
echo "deleting $victim after $(wc -l <"$STATE/stream.log") orders"
$KUBECTL -n $NS delete "$victim" --wait=false
wait $stream
$KUBECTL -n $NS rollout status deploy/$PF-order --timeout 120s
placed=$(wc -l <"$STATE/stream.log")
((placed == STREAM_ORDERS)) || fail "only $placed of $STREAM_ORDERS stream orders were accepted"
# Wait until no stream order is still pending.
for ((t = 0; t < 120; t++)); do
  all=$(orders_json)
  pend=$(grep -o '"status":"[^"]*"' <<<"$all" | grep -vc -e confirmed -e cancelled || true)
  ((pend == 0)) && break
  sleep 1
done
conf=$(count_status confirmed "$all"); canc=$(count_status cancelled "$all")
total=$((conf + canc))
s1=$(stock $product); avail1=$(field available "$s1"); res1=$(field reserved "$s1"); echo "stock after: $s1"
# The user's orders: the first (monitor) plus the stream (notebook, 1 each).
conf_nb=$((conf - 1))
echo "orders: $conf confirmed, $canc cancelled, $pend not final"
((pend == 0)) || fail "$pend orders never reached confirmed or cancelled"
((avail0 - avail1 == conf_nb && res1 == 0)) || fail "stock not conserved: available $avail0 -> $avail1, reserved $res1, confirmed $conf_nb"
result "order pod deleted mid-stream: $placed/$STREAM_ORDERS orders final ($conf_nb confirmed, $canc cancelled), stock $avail0 -> $avail1 = -$conf_nb, reserved 0"

step "delete the NATS pod: it must return on its PersistentVolume with stock and orders intact"
pv0=$($KUBECTL -n $NS get pvc data-$PF-nats-0 -o jsonpath='{.spec.volumeName}')
uid0=$($KUBECTL -n $NS get pod $PF-nats-0 -o jsonpath='{.metadata.uid}')
orders_before=$(orders_json | grep -o '"id":"[^"]*","userId[^}]*"status":"[^"]*"' | sort | md5sum)
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
orders_after=$(orders_json | grep -o '"id":"[^"]*","userId[^}]*"status":"[^"]*"' | sort | md5sum)
[[ $nb_before == "$nb_after" && $mon_before == "$mon_after" ]] || fail "stock changed across the NATS restart: $nb_before -> $nb_after, $mon_before -> $mon_after"
[[ $orders_before == "$orders_after" ]] || fail "orders changed across the NATS restart"
o=$(place "after-nats-$email" monitor)
[[ $(order_status "$o") == confirmed ]] || fail "order after NATS restart: '$(order_status "$o")'"
result "NATS pod deleted: back on PV $pv1 ($(ls $DATA/pv/*/jetstream 2>/dev/null | head -1 >/dev/null; echo local volume)), stock and $total orders intact, a new order confirmed"

step "load the gateway until its HPA (fed by metrics-server) scales it up"
hpa=$PF-gateway
for ((t = 0; t < 90; t++)); do
  $KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}' 2>/dev/null | grep -q . && break
  sleep 2
done
$KUBECTL top pods -n $NS || true
$KUBECTL -n $NS get hpa $hpa
r0=$($KUBECTL -n $NS get deploy $hpa -o jsonpath='{.status.replicas}')
end=$((SECONDS + 240)) scaled=""
while ((SECONDS < end)); do
  # one bounded burst: 400 requests, 8 at a time, at most 20s
  timeout 20 curl -s --parallel --parallel-max 8 -o /dev/null "$BASE/api/product/products?i=[1-400]" || true
  desired=$($KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.desiredReplicas}')
  util=$($KUBECTL -n $NS get hpa $hpa -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}')
  echo "  hpa: cpu ${util:-?}% desired ${desired:-?}"
  if ((${desired:-0} > r0)); then scaled=$desired; break; fi
done
[[ -n $scaled ]] || fail "HPA $hpa did not scale up from $r0 within 240s"
$KUBECTL -n $NS rollout status deploy/$hpa --timeout 120s
sleep 20 # the operator reconciles meanwhile; it must leave replicas to the HPA
r1=$($KUBECTL -n $NS get deploy $hpa -o jsonpath='{.spec.replicas}')
owner=$($KUBECTL -n $NS get deploy $hpa --show-managed-fields -o json | grep -c '"f:replicas"' || true)
$KUBECTL -n $NS get hpa $hpa
$KUBECTL -n $NS describe hpa $hpa | sed -n '/^Events:/,$p'
((r1 >= scaled)) || fail "deployment replicas $r1 after the HPA asked for $scaled: something fights the HPA"
result "HPA scale-up: $hpa $r0 -> $scaled replicas (deployment spec.replicas $r1 after 20s of reconciling; f:replicas managers: $owner)"

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
