# Helpers of e2e.sh: HTTP calls through the gateway's NodePort, the broker's
# monitor, order streams and their accounting. Sourced after lib.sh.
# shellcheck shell=bash

step() { printf '\n==> [%s +%ss] %s\n' "$(date +%T)" "$((SECONDS - E2E_T0))" "$*"; }
result() { echo "$*" | tee -a "$RESULTS"; }
fail() { result "FAIL: $*"; exit 1; }
# elapsed T0: seconds since T0 (date +%s.%N), one decimal.
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"; }

json() { curl -sS --max-time 10 -H 'Content-Type: application/json' "$@"; }

# call METHOD PATH TOKEN [BODY]: prints the status code; the body is in $STATE/body.
call() {
  local m=$1 p=$2 tok=$3 body=${4:-}
  local args=(-sS --max-time 10 -o "$STATE/body" -w '%{http_code}' -X "$m" -H 'Content-Type: application/json')
  [[ -n $tok ]] && args+=(-H "Authorization: Bearer $tok")
  [[ -n $body ]] && args+=(-d "$body")
  curl "${args[@]}" "$BASE$p" || echo 000
}
# expect WANT_STATUS WANT_CODE METHOD PATH TOKEN BODY WHAT: one refusal (or
# success) through the gateway, with the error code when one is wanted.
expect() {
  local want=$1 code=$2 m=$3 p=$4 tok=$5 body=$6 what=$7 got gotcode
  got=$(call "$m" "$p" "$tok" "$body")
  gotcode=$(jq -r '.error.code // empty' "$STATE/body" 2>/dev/null || true)
  if [[ $got != "$want" || (-n $code && $gotcode != "$code") ]]; then
    fail "$what: $m $p answered $got ${gotcode:-} ($(head -c 200 "$STATE/body")), want $want $code"
  fi
  printf '  %-58s %s %s %s\n' "$what" "$m $p" "$got" "$gotcode"
}

# signup EMAIL -> token (a commerce customer)
signup() {
  json -f -X POST "$BASE/api/user/users" -d "{\"email\":\"$1\",\"name\":\"E2E\",\"password\":\"correct-horse\"}" >/dev/null
  json -f -X POST "$BASE/api/user/login" -d "{\"email\":\"$1\",\"password\":\"correct-horse\"}" | jq -r '.token // empty'
}

order_status() { jq -r '.status // empty' <<<"$1" 2>/dev/null || true; }
# place KEY PRODUCT [TOKEN] -> the order's JSON
place() {
  json -X POST "$BASE/api/order/orders" -H "Authorization: Bearer ${3:-$TOKEN}" -H "Idempotency-Key: $1" \
    -d "{\"items\":[{\"productId\":\"$2\",\"quantity\":1}],\"paymentMethod\":\"card\",\"shippingAddress\":\"1 Main St\"}"
}
stock() { json -f "$BASE/api/product/stock/$1" -H "Authorization: Bearer $ATOKEN"; }
# stock_sum PRODUCT -> "available reserved sold total restocked": product
# keeps available + reserved + sold = stock set + restocked (a restocked
# sale stays counted as sold), so total is the stock set: the sum less what
# refunds put back.
stock_sum() { stock "$1" | jq -r '"\(.available) \(.reserved) \(.sold) \(.available + .reserved + .sold - (.restocked // 0)) \(.restocked // 0)"'; }
orders_json() { json -f "$BASE/api/order/orders" -H "Authorization: Bearer ${1:-$TOKEN}"; }
# statuses PRODUCT: the customer's orders of one product, one status per line
statuses() { orders_json | jq -r --arg p "$1" '.items[] | select(any(.items[]; .productId == $p)) | .status'; }

# order_stream NAME PRODUCT COUNT PAUSE: places COUNT orders of PRODUCT one
# after the other (run it in the background). Each order retries its own
# Idempotency-Key until the gateway answers with a status (bounded: 90 s),
# so a refusal while the broker fails over is retried, never doubled.
# $STATE/NAME.log: "i status epoch"; $STATE/NAME.retries: the refusals.
order_stream() {
  local name=$1 product=$2 count=$3 pause=$4 i t r s
  : >"$STATE/$name.log"
  : >"$STATE/$name.retries"
  for i in $(seq 1 "$count"); do
    for ((t = 0; t < 90; t++)); do
      r=$(place "$name-$RUN_ID-$i" "$product" 2>/dev/null) || r=""
      s=$(order_status "$r")
      [[ -n $s ]] && { echo "$i $s $(date +%s.%N)" >>"$STATE/$name.log"; break; }
      echo "$i $(date +%s.%N) ${r:0:160}" >>"$STATE/$name.retries"
      sleep 1
    done
    sleep "$pause"
  done
}

# settle_stream NAME PRODUCT COUNT TOTAL0 SOLD0: waits until every order of
# the stream is final, then checks that none is lost and stock is
# conserved: available+reserved+sold-restocked unchanged, nothing left reserved, and
# sold grown by the confirmed orders. Sets CONF, CANC.
settle_stream() {
  local name=$1 product=$2 count=$3 total0=$4 sold0=$5 st pend placed a r s total t
  placed=$(wc -l <"$STATE/$name.log")
  ((placed == count)) || fail "$name: only $placed of $count orders were accepted (refusals: $(wc -l <"$STATE/$name.retries"))"
  for ((t = 0; t < 120; t++)); do
    st=$(statuses "$product") || st=""
    pend=$(grep -cvE '^(confirmed|cancelled)$' <<<"$st" || true)
    [[ -n $st && $pend == 0 ]] && break
    sleep 1
  done
  CONF=$(grep -cx confirmed <<<"$st" || true)
  CANC=$(grep -cx cancelled <<<"$st" || true)
  ((pend == 0 && CONF + CANC == count)) ||
    fail "$name: $pend of $count orders never reached confirmed or cancelled ($CONF confirmed, $CANC cancelled)"
  # Stock settles with the last saga step; give it the same bound.
  for ((t = 0; t < 60; t++)); do
    read -r a r s total _ <<<"$(stock_sum "$product")"
    ((r == 0 && total == total0 && s - sold0 == CONF)) && break
    sleep 1
  done
  echo "$name: stock of $product available $a reserved $r sold $s (sold before $sold0, total before $total0)"
  ((total == total0)) || fail "$name: stock not conserved: available+reserved+sold-restocked $total0 -> $total"
  ((r == 0)) || fail "$name: $r units of $product still reserved after every order ended"
  ((s - sold0 == CONF)) || fail "$name: sold grew by $((s - sold0)) for $CONF confirmed orders"
}

# cond NS PLATFORM TYPE FIELD: one field (status, reason, message) of a condition.
cond() { $KUBECTL -n "$1" get pf "$2" -o jsonpath="{.status.conditions[?(@.type==\"$3\")].$4}"; }

# The broker's pods, their monitor, and JetStream's view of the cluster.
nats_pods() { $KUBECTL -n "$1" get pods -l app.kubernetes.io/instance="$2",app.kubernetes.io/component=broker -o name | sed 's#pod/##'; }
pod_ip() { $KUBECTL -n "$1" get pod "$2" -o jsonpath='{.status.podIP}'; }
# monitor NS POD PATH: GET on the pod's NATS monitor (port 8222), from the
# node, which is on the pods' bridge.
monitor() { curl -fsS --max-time 5 "http://$(pod_ip "$1" "$2"):8222$3"; }
# consumer_lag NS PF STREAM CONSUMER: pending + unacknowledged, as KEDA's
# nats-jetstream scaler reads it, from the consumer's leader (the broker's
# server names are its pods').
consumer_lag() {
  local p out
  for p in $(nats_pods "$1" "$2"); do
    out=$(monitor "$1" "$p" "/jsz?acc=%24G&consumers=true" 2>/dev/null | jq -r --arg me "$p" --arg s "$3" --arg c "$4" '
      [.account_details[]?.stream_detail[]? | select(.name == $s) | .consumer_detail[]? | select(.name == $c)]
      | map(select((.cluster.leader // $me) == $me)) | first | if . then .num_pending + .num_ack_pending else empty end' 2>/dev/null) || continue
    [[ -n $out ]] && { echo "$out"; return 0; }
  done
  return 1
}

# longest_gap NAME: the longest wait, in seconds, between two orders of a
# stream being accepted (the stream's own pause included).
longest_gap() { awk 'NR > 1 {g = $3 - p; if (g > m) m = g} {p = $3} END {printf "%.1f", m}' "$STATE/$1.log"; }

# rescales NS HPA SINCE: the HPA's SuccessfulRescale events from SINCE
# (epoch) on, one "epoch new-size" a line, oldest first. The events' times
# (to the second) date a scaling more closely than the watcher's samples,
# which are seconds apart on a loaded machine.
rescales() {
  $KUBECTL -n "$1" get events --field-selector "involvedObject.name=$2,reason=SuccessfulRescale" -o json |
    jq -r '.items[] | "\(.lastTimestamp // .eventTime) \(.message)"' |
    while read -r ts msg; do
      [[ $msg =~ ^New\ size:\ ([0-9]+) ]] || continue
      n=${BASH_REMATCH[1]}
      e=$(date -d "$ts" +%s) || continue
      if ((e >= ${3%.*})); then echo "$e $n"; fi
    done | sort -n
  return 0
}

# jaeger_traces FILE: the traces of a Jaeger query API answer (/api/traces),
# one a line: "traceID spans roots durationMs errors service×spans,…". A
# root is a span that references no span of its own trace (Jaeger shows a
# consumer's parent, which is also its link, as FOLLOWS_FROM): a whole
# trace has one. errors: spans with status error (a failed delivery that
# was redelivered, a retried call).
jaeger_traces() {
  jq -r '.data[]? | . as $t | [$t.spans[].spanID] as $ids
    | ([$t.spans[] | select(all(.references[]?; .spanID as $r | all($ids[]; . != $r)))] | length) as $roots
    | ((([$t.spans[] | .startTime + .duration] | max) - ([$t.spans[].startTime] | min)) / 1000 | floor) as $ms
    | ([$t.spans[] | select(any(.tags[]?; .key == "error" and .value == true))] | length) as $errors
    | ([$t.spans[] | $t.processes[.processID].serviceName] | group_by(.) | map("\(.[0])×\(length)") | join(",")) as $svc
    | "\($t.traceID) \($t.spans | length) \($roots) \($ms) \($errors) \($svc)"' "$1" 2>/dev/null || true
}
# jaeger_has_span FILE TRACEID SERVICE OPERATION: whether that trace of a
# Jaeger answer holds a span of SERVICE named OPERATION.
jaeger_has_span() {
  jq -e --arg id "$2" --arg s "$3" --arg op "$4" \
    '[.data[]? | select(.traceID == $id) | . as $t | .spans[] | select($t.processes[.processID].serviceName == $s and .operationName == $op)] | length > 0' \
    "$1" >/dev/null 2>&1
}
# jaeger_waterfall FILE: the first trace of a Jaeger answer, a span a line
# in start order: offset and duration in ms, service, kind, name, and the
# status message of a span that failed.
jaeger_waterfall() {
  jq -r '.data[0] as $t | ([$t.spans[].startTime] | min) as $t0 | $t.spans | sort_by(.startTime) | .[]
    | [((.startTime - $t0) / 1000), (.duration / 1000), $t.processes[.processID].serviceName,
       ([.tags[]? | select(.key == "span.kind") | .value] | first // "internal"), .operationName,
       (if any(.tags[]?; .key == "error" and .value == true)
        then "  ERROR: " + ([.tags[]? | select(.key == "otel.status_description") | .value] | first // "") else "" end)] | @tsv' "$1" |
    awk -F'\t' '{printf "  +%7.1fms %7.1fms  %-13s %-9s %s%s\n", $1, $2, $3, $4, $5, $6}'
}
