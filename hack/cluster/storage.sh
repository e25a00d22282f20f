#!/usr/bin/env bash
# Storage for the local cluster: no provisioner. A StorageClass "local"
# (kubernetes.io/no-provisioner, WaitForFirstConsumer, the cluster default)
# and eight pre-created "local" PersistentVolumes (PV_COUNT), each a directory under
# /var/lib/switchboard-cluster/pv pinned to the node. The PV binder in
# kube-controller-manager binds a claim (e.g. the NATS StatefulSet's
# volumeClaimTemplate) to one of them when its pod is scheduled.
#
# "local" rather than "hostPath" volumes: the kubelet applies a pod's fsGroup
# to local volumes, as on a real cluster's disks, and not to hostPath ones;
# the broker runs as UID 1000 and must be able to write its store.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
COUNT=${PV_COUNT:-8}
SIZE=${PV_SIZE:-5Gi}
{
cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
for i in $(seq 1 "$COUNT"); do
  mkdir -p "$DATA/pv/pv$i"
  cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-pv$i, labels: {switchboard.dev/local-cluster: "true"}}
spec:
  capacity: {storage: $SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local
  volumeMode: Filesystem
  local: {path: $DATA/pv/pv$i}
  nodeAffinity:
    required:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE]}]}]
YAML
done
} | $KUBECTL apply -f - >/dev/null
log "storage: StorageClass local (no provisioner, default) and $COUNT local PVs of $SIZE under $DATA/pv"
