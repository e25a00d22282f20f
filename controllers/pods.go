package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// The operator reads the pods of its Deployments and StatefulSet (they
// carry its labels, so its cache holds only them) and, by name, the claims
// of a pod that cannot be scheduled, to say in status why a pod does not
// start.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get

// Reasons a pod does not start; BrokerReady takes them as its reason.
const (
	reasonImagePullFailed      = "ImagePullFailed"
	reasonUnschedulable        = "Unschedulable"
	reasonCrashLooping         = "CrashLooping"
	reasonContainerConfigError = "ContainerConfigError"
)

// podProblem is why one pod does not start, in words a person can act on.
type podProblem struct {
	reason  string
	message string
}

// imagePullReasons are the kubelet's waiting reasons of a container whose
// image cannot be had.
var imagePullReasons = []string{"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}

// diagnosePod says why pod does not start, or nil when nothing is known to
// be wrong (it may simply be starting). claim reads a claim of the pod by
// name; a claim it cannot read is left out of the message.
func diagnosePod(pod *corev1.Pod, claim func(name string) (*corev1.PersistentVolumeClaim, error)) *podProblem {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			msg := fmt.Sprintf("pod %s cannot be scheduled: %s", pod.Name, strings.TrimSpace(c.Message))
			for _, v := range pod.Spec.Volumes {
				if v.PersistentVolumeClaim == nil {
					continue
				}
				pvc, err := claim(v.PersistentVolumeClaim.ClaimName)
				if err != nil || pvc.Status.Phase != corev1.ClaimPending {
					continue
				}
				class := "the default StorageClass"
				if pvc.Spec.StorageClassName != nil {
					class = fmt.Sprintf("StorageClass %q", *pvc.Spec.StorageClassName)
				}
				msg += fmt.Sprintf("; its PersistentVolumeClaim %s is Pending: check that %s exists and can provision or bind a volume (kubectl describe pvc %s)", pvc.Name, class, pvc.Name)
			}
			return &podProblem{reason: reasonUnschedulable, message: msg}
		}
	}
	statuses := slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses)
	for _, cs := range statuses {
		w := cs.State.Waiting
		if w == nil {
			continue
		}
		switch {
		case slices.Contains(imagePullReasons, w.Reason):
			return &podProblem{reason: reasonImagePullFailed, message: fmt.Sprintf(
				"pod %s cannot pull image %s of container %s (%s: %s): check the image's name and tag, that the nodes can reach its registry, and the pull secret",
				pod.Name, cs.Image, cs.Name, w.Reason, oneLine(w.Message))}
		case w.Reason == "CrashLoopBackOff":
			last := ""
			if t := cs.LastTerminationState.Terminated; t != nil {
				last = fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
			}
			return &podProblem{reason: reasonCrashLooping, message: fmt.Sprintf(
				"container %s of pod %s is crash-looping (%d restarts%s): see kubectl logs %s -c %s --previous",
				cs.Name, pod.Name, cs.RestartCount, last, pod.Name, cs.Name)}
		case w.Reason == "CreateContainerConfigError" || w.Reason == "CreateContainerError":
			return &podProblem{reason: reasonContainerConfigError, message: fmt.Sprintf(
				"pod %s cannot start container %s (%s: %s)", pod.Name, cs.Name, w.Reason, oneLine(w.Message))}
		}
	}
	return nil
}

// oneLine keeps a kubelet message short enough for a condition.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	const max = 300
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// podProblems reads the pods of p and returns, by component (a service's
// name or render.ComponentBroker), why the first of its pods that does not
// start does not, by pod name.
func (r *PlatformReconciler) podProblems(ctx context.Context, p *v1alpha1.Platform) (map[string]*podProblem, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(p.Namespace), client.MatchingLabelsSelector{Selector: render.PlatformSelector(p)}); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	claim := func(name string) (*corev1.PersistentVolumeClaim, error) {
		pvc := &corev1.PersistentVolumeClaim{}
		// Claims carry no managed-by label (a StatefulSet makes them), so
		// the cache does not hold them.
		reader := r.APIReader
		if reader == nil {
			reader = r.Client
		}
		return pvc, reader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, pvc)
	}
	problems := map[string]*podProblem{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		component := pod.Labels[render.LabelComponent]
		if problems[component] != nil || !pod.DeletionTimestamp.IsZero() {
			continue
		}
		if pr := diagnosePod(pod, claim); pr != nil {
			problems[component] = pr
		}
	}
	return problems, nil
}

// platformForPod maps a pod of the operator's to its Platform.
func platformForPod(_ context.Context, pod client.Object) []reconcile.Request {
	name := pod.GetLabels()[render.LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: pod.GetNamespace(), Name: name}}}
}

// podStartChanged lets through the pod events that can change what status
// says: a pod created or deleted, its readiness, or why it does not start.
// The other pod updates (probes passing, IPs) would only cost reconciles.
var podStartChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		oldPod, ok1 := e.ObjectOld.(*corev1.Pod)
		newPod, ok2 := e.ObjectNew.(*corev1.Pod)
		if !ok1 || !ok2 {
			return true
		}
		return podSummary(oldPod) != podSummary(newPod)
	},
}

// podSummary is what of a pod status depends on, with no claim lookup.
func podSummary(pod *corev1.Pod) string {
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	pr := diagnosePod(pod, func(string) (*corev1.PersistentVolumeClaim, error) { return nil, errNoLookup })
	if pr == nil {
		return fmt.Sprint(ready)
	}
	return fmt.Sprint(ready, pr.reason, pr.message)
}

var errNoLookup = fmt.Errorf("no claim lookup in an event filter")
