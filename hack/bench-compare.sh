#!/usr/bin/env bash
# bench-compare.sh BASE [ROUNDS] [BENCHTIME...]: BenchmarkOrders of commit
# BASE and of the working tree side by side, in one session on one machine.
#
# BASE is checked out into a temporary worktree; both test binaries are
# built first, then run in turn, ROUNDS rounds (default 3) for each
# -benchtime given (default 3s and 12000x: a few seconds hides what only a
# long run shows, such as records that grow with every order). Each line is
# the benchmark's own: orders/s, p50, p99 and the CPU time per order. The
# order of the two alternates between rounds, so neither always runs on a
# warmer or a colder machine.
set -euo pipefail

base=${1:?usage: hack/bench-compare.sh BASE [ROUNDS] [BENCHTIME...]}
rounds=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
times=("$@")
[[ ${#times[@]} -gt 0 ]] || times=(3s 12000x)

repo=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$repo" worktree add -q --detach "$work/base" "$base"
echo "base:    $(git -C "$work/base" log --oneline -1)"
echo "current: $(git -C "$repo" log --oneline -1)$(git -C "$repo" diff --quiet HEAD || echo ' (with uncommitted changes)')"
echo "machine: $(nproc) CPUs; $(uptime)"
(cd "$work/base" && go test -c -o "$work/base.test" ./test/bench/)
(cd "$repo" && go test -c -o "$work/current.test" ./test/bench/)

run() { # run NAME BENCHTIME
  local line dir=$repo
  [[ $1 == base ]] && dir=$work/base
  line=$(cd "$dir/test/bench" && "$work/$1.test" -test.run '^$' -test.bench 'BenchmarkOrders$' -test.benchtime "$2" 2>&1 | grep '^BenchmarkOrders' || true)
  printf '%-8s %-7s %s\n' "$1" "$2" "${line:-failed}"
}

for t in "${times[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then run base "$t"; run current "$t"; else run current "$t"; run base "$t"; fi
  done
done
echo "load after: $(uptime)"
