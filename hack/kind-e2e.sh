#!/usr/bin/env bash
# The kind path: what a user with Docker runs to see Switchboard work on a
# real cluster, end to end.
#
#   make kind-e2e            (or: hack/kind-e2e.sh)
#
# 1. create a kind cluster            4. apply config/samples/platform.yaml, wait for Ready
# 2. docker build, kind load          5. port-forward the gateway, run a smoke order
# 3. helm install the chart           6. delete the cluster (KEEP_CLUSTER=1 keeps it)
#
# Needs docker (with a running engine), kind, kubectl, curl and helm
# (HELM, default ./bin/helm, which `make helm` builds). It has not been run in
# the project's CI, which has no Docker engine; see the README.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-switchboard-e2e}
VERSION=${VERSION:-e2e}
IMG=${IMG:-ghcr.io/switchboard-dev/switchboard:${VERSION}}
HELM=${HELM:-bin/helm}
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}
RELEASE_NS=switchboard-system
NS=demo
PLATFORM=shop
LOCAL_PORT=${LOCAL_PORT:-18080}
TIMEOUT=${TIMEOUT:-600s}

for tool in docker "$KIND" "$KUBECTL" curl "$HELM"; do
	command -v "$tool" >/dev/null || { echo "kind-e2e: $tool not found" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-e2e: no Docker engine answers (docker info failed)" >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }

pf_pid=""
cleanup() {
	rc=$?
	[[ -n "$pf_pid" ]] && kill "$pf_pid" 2>/dev/null || true
	if (( rc != 0 )); then
		echo "kind-e2e: FAILED (exit $rc); state of the cluster:" >&2
		"$KUBECTL" get pf,deploy,sts,pods,svc -A -o wide 2>/dev/null || true
		"$KUBECTL" -n "$NS" describe pf "$PLATFORM" 2>/dev/null | tail -40 || true
		"$KUBECTL" -n "$RELEASE_NS" logs deploy/switchboard --tail=100 2>/dev/null || true
	fi
	if [[ -z "${KEEP_CLUSTER:-}" ]]; then
		"$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
	else
		echo "kind-e2e: keeping cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
	fi
	exit $rc
}
trap cleanup EXIT

step "kind create cluster $CLUSTER"
"$KIND" create cluster --name "$CLUSTER" --wait 120s
"$KUBECTL" config use-context "kind-$CLUSTER"

step "docker build $IMG"
docker build --build-arg VERSION="$VERSION" -t "$IMG" .

step "kind load $IMG"
"$KIND" load docker-image "$IMG" --name "$CLUSTER"

step "helm install (image pulled from the node, never from a registry)"
"$HELM" upgrade --install switchboard charts/switchboard \
	--namespace "$RELEASE_NS" --create-namespace \
	--set image.repository="${IMG%:*}" --set image.tag="${IMG##*:}" --set image.pullPolicy=Never \
	--wait --timeout "$TIMEOUT"
"$KUBECTL" -n "$RELEASE_NS" rollout status deployment/switchboard --timeout "$TIMEOUT"

step "kubectl apply the sample Platform"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
# The services run the operator's image, loaded above; Never keeps kind from pulling it.
"$KUBECTL" apply -n "$NS" -f config/samples/platform.yaml
"$KUBECTL" -n "$NS" wait pf/"$PLATFORM" --for=condition=Ready --timeout "$TIMEOUT"
"$KUBECTL" -n "$NS" get pf

step "port-forward the gateway to localhost:$LOCAL_PORT"
"$KUBECTL" -n "$NS" port-forward svc/"$PLATFORM"-gateway "$LOCAL_PORT":80 >/dev/null &
pf_pid=$!
base="http://127.0.0.1:$LOCAL_PORT"
for _ in $(seq 1 60); do
	curl -fsS "$base/health" >/dev/null 2>&1 && break
	sleep 1
done
curl -fsS "$base/health" >/dev/null

step "smoke order: register, log in, order, expect confirmed"
email="kind-$(date +%s)@example.com"
json() { curl -sS -H 'Content-Type: application/json' "$@"; }
json -f -X POST "$base/api/user/users" -d "{\"email\":\"$email\",\"name\":\"Kind\",\"password\":\"correct-horse\"}" >/dev/null
token=$(json -f -X POST "$base/api/user/login" -d "{\"email\":\"$email\",\"password\":\"correct-horse\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[[ -n "$token" ]] || { echo "kind-e2e: login returned no token" >&2; exit 1; }
order=$(json -X POST "$base/api/order/orders" -H "Authorization: Bearer $token" -H "Idempotency-Key: kind-e2e-$email" \
	-d '{"items":[{"productId":"monitor","quantity":1}],"paymentMethod":"card","shippingAddress":"1 Main St"}')
echo "$order"
# The order's own status is the first "status" key (history entries follow it).
status=$(grep -o '"status":"[^"]*"' <<<"$order" | head -1 | cut -d'"' -f4)
[[ "$status" == confirmed ]] || { echo "kind-e2e: order status is '$status', want confirmed" >&2; exit 1; }

step "kind-e2e passed"
