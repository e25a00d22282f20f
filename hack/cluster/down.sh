#!/usr/bin/env bash
# make cluster-down: take the local cluster down and leave the host as it was.
#   1. stop the controllers, delete every pod so the kubelet tears down its
#      sandboxes through CNI (releasing veths and IPs);
#   2. end every process by the PID recorded at start, in reverse order;
#   3. remove what is left in containerd, then the mounts, network namespaces,
#      iptables chains (KUBE-*, CNI-*), the bridge, CNI state and the kubepods
#      cgroups; restore the recorded sysctls;
#   4. run the leftover check (hack/cluster/leftovers.sh), which fails if
#      anything remains.
# Safe to run again, and when nothing is up. The build cache stays.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[[ $(id -u) == 0 ]] || die "needs root"

stop_pid() { # name [timeout]
  local name=$1 t=${2:-15} pid i
  [[ -f $PIDS/$name ]] || return 0
  pid=$(cat "$PIDS/$name")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < t * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null; sleep 0.2; }
    log "stopped $name (PID $pid)"
  fi
  rm -f "$PIDS/$name"
}
containerd_up() { pid_alive containerd && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

# 1. Pods first, while the kubelet can still tear them down through CNI.
stop_pid kube-controller-manager
stop_pid kube-scheduler
if pid_alive kube-apiserver && pid_alive kubelet; then
  $KUBECTL delete pods --all -A --force --grace-period=0 --wait=false --request-timeout=10s >/dev/null 2>&1 || true
  for ((i = 0; i < 60; i++)); do
    containerd_up || break
    [[ -z $(ctr_k8s tasks ls -q 2>/dev/null) ]] && break
    sleep 1
  done
fi

# 2. The rest of the processes, by recorded PID, in reverse boot order.
for ((i = ${#COMPONENTS[@]} - 1; i >= 1; i--)); do stop_pid "${COMPONENTS[i]}"; done

# 3a. Whatever containerd still runs: kill and delete tasks, containers, then
#     stop containerd itself (the shims exit with their tasks).
if containerd_up; then
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
  sleep 1
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$id" >/dev/null 2>&1; done
  for id in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers delete "$id" >/dev/null 2>&1; done
fi
stop_pid containerd
# Shims whose task could not be deleted: identified by our socket, ended by PID.
for p in /proc/[0-9]*; do
  if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "containerd-shim.*-address $CONTAINERD_SOCK"; then
    log "ending leftover shim PID ${p#/proc/}"; kill -KILL "${p#/proc/}" 2>/dev/null
  fi
done

# 3b. Mounts under the cluster's directories and its network namespaces.
umount_under() {
  local m
  for ((pass = 0; pass < 5; pass++)); do
    mapfile -t ms < <(awk -v a="$DATA" -v b="$RUN" '$5 ~ "^"a || $5 ~ "^"b {print $5}' /proc/self/mountinfo | sort -r)
    ((${#ms[@]})) || return 0
    for m in "${ms[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
}
umount_under
if [[ -f $STATE/netns.before ]]; then
  for ns in $(ls /run/netns 2>/dev/null); do
    [[ $ns == cni-* ]] || continue
    grep -qx "$ns" "$STATE/netns.before" && continue
    umount "/run/netns/$ns" 2>/dev/null || umount -l "/run/netns/$ns" 2>/dev/null
    rm -f "/run/netns/$ns"
  done
fi

# 3c. iptables (and ip6tables) rules and chains of kube-proxy and CNI.
for ipt in iptables ip6tables; do
  command -v $ipt >/dev/null || continue
  for t in filter nat mangle raw; do
    # rules in any chain that jump to a KUBE-/CNI- chain, or carry kube-proxy's comments
    $ipt -t $t -S 2>/dev/null | grep -E '^-A ' | grep -E -- '-j (KUBE|CNI)-|^-A (KUBE|CNI)-' | grep -vE '^-A (KUBE|CNI)-' |
      while read -r rule; do eval "$ipt -t $t ${rule/-A/-D}" 2>/dev/null; done
    for c in $($ipt -t $t -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do $ipt -t $t -F "$c" 2>/dev/null; done
    for c in $($ipt -t $t -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do $ipt -t $t -X "$c" 2>/dev/null; done
  done
done
if command -v nft >/dev/null; then
  for fam in ip ip6; do nft list table $fam kube-proxy >/dev/null 2>&1 && nft delete table $fam kube-proxy; done
  # Tables that did not exist before up and are now empty (base chains, no rules).
  if [[ -f $STATE/nft.before ]]; then
    nft list tables 2>/dev/null | while read -r _ fam tbl; do
      grep -qx "table $fam $tbl" "$STATE/nft.before" && continue
      nft list table "$fam" "$tbl" 2>/dev/null | grep -qvE '^\s*(table|chain|type|policy|\}|$)' || nft delete table "$fam" "$tbl"
    done
  fi
fi

# 3d. The bridge (its veths went with the pods' namespaces) and CNI state.
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  [[ $(ip -o link show "$v" 2>/dev/null) == *"master $BRIDGE"* ]] && ip link del "$v"
done

# 3e. kubepods cgroups, deepest first (empty once their tasks are gone).
for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice; do
  [[ -d $h ]] || continue
  find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
done

# 3f. sysctls, back to the values recorded before the cluster started.
if [[ -f $STATE/sysctl.saved ]]; then
  while IFS='=' read -r k v; do
    [[ -n $k ]] || continue
    [[ $(sysctl -n "$k" 2>/dev/null) == "$v" ]] || { sysctl -qw "$k=$v" && log "restored $k=$v"; }
  done <"$STATE/sysctl.saved"
fi

# Informational: every other sysctl that differs from before up (volatile counters excluded).
if [[ -f $STATE/sysctl.all.before ]]; then
  diff <(grep -vE '^(fs\.|kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|net\.netfilter\.nf_conntrack_count|kernel\.sched_domain|vm\.stat)' "$STATE/sysctl.all.before") \
    <(sysctl -a 2>/dev/null | sort | grep -vE '^(fs\.|kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|net\.netfilter\.nf_conntrack_count|kernel\.sched_domain|vm\.stat)') |
    grep '^[<>]' | sed 's/^/sysctl diff (informational): /' | head -40
fi

# 3g. Directories: runtime state goes; the build cache and the logs stay.
umount_under
rm -rf "$DATA" "$RUN"
leftover_state=("$STATE"/{pids,pki,static,started,kubeconfig,sysctl.saved,sysctl.all.before,netns.before,nft.before} "$STATE"/*.kubeconfig "$STATE"/*.yaml "$STATE"/*.toml "$STATE"/resolv.conf)
"$(dirname "$0")/leftovers.sh" && { rm -rf "${leftover_state[@]}"; log "cluster down: nothing left over"; }
