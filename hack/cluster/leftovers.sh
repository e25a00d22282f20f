#!/usr/bin/env bash
# The leftover check of the local cluster: lists anything cluster-up created
# that is still on the host, and exits 1 if there is anything. down.sh ends
# with it; it can also run alone (hack/cluster/leftovers.sh).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
found=0
left() { echo "leftover: $*"; found=1; }

# processes: recorded PIDs, anything run from the cluster's binaries, shims on our socket
for f in "$PIDS"/*; do
  [[ -f $f ]] || continue
  kill -0 "$(cat "$f")" 2>/dev/null && left "process $(basename "$f") PID $(cat "$f")"
done
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  [[ $exe == "$BIN"/* ]] && left "process ${p#/proc/} running $exe"
  if [[ $exe == */containerd* ]] && tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qE -- "$STATE/containerd.toml|-address $CONTAINERD_SOCK"; then
    left "process ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline")"
  fi
done
# mounts and directories
awk -v a="$DATA" -v b="$RUN" '$5 ~ "^"a || $5 ~ "^"b {print "leftover: mount " $5}' /proc/self/mountinfo | grep . && found=1
for d in "$DATA" "$RUN"; do [[ -e $d ]] && left "directory $d"; done
if [[ -f $STATE/netns.before ]]; then
  for ns in $(ls /run/netns 2>/dev/null); do
    [[ $ns == cni-* ]] && ! grep -qx "$ns" "$STATE/netns.before" && left "network namespace $ns"
  done
else
  for ns in $(ls /run/netns 2>/dev/null); do [[ $ns == cni-* ]] && left "network namespace $ns (cni-*)"; done
fi
# network
ip link show "$BRIDGE" >/dev/null 2>&1 && left "link $BRIDGE"
for ipt in iptables ip6tables; do
  command -v $ipt >/dev/null || continue
  for t in filter nat mangle raw; do
    $ipt -t $t -S 2>/dev/null | grep -E -- '(KUBE|CNI)-' | sed "s/^/leftover: $ipt -t $t /" | grep . && found=1
  done
done
if command -v nft >/dev/null; then
  for fam in ip ip6; do nft list table $fam kube-proxy >/dev/null 2>&1 && left "nftables table $fam kube-proxy"; done
  if [[ -f $STATE/nft.before ]]; then
    while read -r t; do grep -qxF "$t" "$STATE/nft.before" || left "nftables $t (created while the cluster ran)"; done < <(nft list tables 2>/dev/null)
  fi
fi
# cgroups
for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice; do
  [[ -d $h ]] && left "cgroup $h"
done
# sysctls
if [[ -f $STATE/sysctl.saved ]]; then
  while IFS='=' read -r k v; do
    [[ -n $k ]] || continue
    now=$(sysctl -n "$k" 2>/dev/null)
    [[ $now == "$v" ]] || left "sysctl $k=$now (was $v)"
  done <"$STATE/sysctl.saved"
fi
((found)) && { echo "leftover check: FAILED" >&2; exit 1; }
echo "leftover check: nothing left"
