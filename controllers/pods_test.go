package controllers_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// podOption shapes the status a pod is given (envtest has no kubelet and
// no scheduler: the test plays them).
type podOption func(*corev1.Pod)

// waiting gives the pod's first container a waiting state.
func waiting(reason, message string) podOption {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}},
		}}
	}
}

func crashLooping(restarts int32, exitCode int32, why string) podOption {
	return func(p *corev1.Pod) {
		waiting("CrashLoopBackOff", "back-off 5m0s restarting failed container")(p)
		cs := &p.Status.ContainerStatuses[0]
		cs.RestartCount = restarts
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: why}
	}
}

func unschedulable(message string) podOption {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: message,
		}}
	}
}

func withClaim(name string) podOption {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name},
		}})
	}
}

// createPod creates a pod of component in p, labelled as the operator's
// workloads label theirs, with the status opts give it.
func createPod(t *testing.T, p *v1alpha1.Platform, name, component, image string, opts ...podOption) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: render.Labels(p, component)},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: component, Image: image}},
		},
	}
	for _, o := range opts {
		o(pod)
	}
	status := pod.Status
	if err := k8s.Create(testCtx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = status
	if err := k8s.Status().Update(testCtx, pod); err != nil {
		t.Fatal(err)
	}
}

// The Platform's status names the pod that does not start and why, in
// the condition of the broker or of the services, so `kubectl get pf -o
// yaml` says what `kubectl describe pod` would.
func TestStatusSaysWhyAPodDoesNotStart(t *testing.T) {
	tests := []struct {
		name      string
		pod       func(t *testing.T, p *v1alpha1.Platform)
		condition string
		reason    string
		want      []string
	}{
		{
			name: "a broker pod that cannot pull its image",
			pod: func(t *testing.T, p *v1alpha1.Platform) {
				createPod(t, p, "pf-nats-0", render.ComponentBroker, "nats:2.15.2",
					waiting("ImagePullBackOff", `Back-off pulling image "nats:2.15.2"`))
			},
			condition: controllers.ConditionBrokerReady, reason: "ImagePullFailed",
			want: []string{"0/1 NATS replicas ready", "pod pf-nats-0 cannot pull image nats:2.15.2 of container broker (ImagePullBackOff", "pull secret"},
		},
		{
			name: "a broker pod whose claim is pending",
			pod: func(t *testing.T, p *v1alpha1.Platform) {
				pvc := &corev1.PersistentVolumeClaim{
					ObjectMeta: metav1.ObjectMeta{Name: "data-pf-nats-0", Namespace: p.Namespace, Labels: render.SelectorLabels(p, render.ComponentBroker)},
					Spec: corev1.PersistentVolumeClaimSpec{
						AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						StorageClassName: ptr.To("fast"),
						Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
					},
				}
				if err := k8s.Create(testCtx, pvc); err != nil {
					t.Fatal(err)
				}
				pvc.Status.Phase = corev1.ClaimPending
				if err := k8s.Status().Update(testCtx, pvc); err != nil {
					t.Fatal(err)
				}
				createPod(t, p, "pf-nats-0", render.ComponentBroker, "nats:2.15.2", withClaim("data-pf-nats-0"),
					unschedulable("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."))
			},
			condition: controllers.ConditionBrokerReady, reason: "Unschedulable",
			want: []string{"pod pf-nats-0 cannot be scheduled: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
				`its PersistentVolumeClaim data-pf-nats-0 is Pending: check that StorageClass "fast" exists`},
		},
		{
			name: "a crash-looping service pod",
			pod: func(t *testing.T, p *v1alpha1.Platform) {
				createPod(t, p, "pf-order-7d9f-x2", "order", testImage, crashLooping(6, 1, "Error"))
			},
			condition: controllers.ConditionServicesReady, reason: "ServicesNotReady",
			want: []string{"order (0/1 ready: container order of pod pf-order-7d9f-x2 is crash-looping (6 restarts, last exit code 1 (Error)): see kubectl logs pf-order-7d9f-x2 -c order --previous)"},
		},
		{
			name: "a service pod whose Secret key is missing",
			pod: func(t *testing.T, p *v1alpha1.Platform) {
				createPod(t, p, "pf-payment-5c-q", "payment", testImage,
					waiting("CreateContainerConfigError", `couldn't find key auth-key in Secret pf-auth`))
			},
			condition: controllers.ConditionServicesReady, reason: "ServicesNotReady",
			want: []string{"payment (0/1 ready: pod pf-payment-5c-q cannot start container payment (CreateContainerConfigError: couldn't find key auth-key in Secret pf-auth))"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			r, _ := newDirectReconciler(t)
			p := createAndReconcile(t, r, testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
			tt.pod(t, p)
			reconcile(t, r, p)
			p = get(t, p)
			c := meta.FindStatusCondition(p.Status.Conditions, tt.condition)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tt.reason {
				t.Fatalf("%s = %+v, want False with reason %s", tt.condition, c, tt.reason)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.Message, w) {
					t.Errorf("%s message %q lacks %q", tt.condition, c.Message, w)
				}
			}
			// Ready repeats the broker's reason first: the services wait for it.
			if ready := meta.FindStatusCondition(p.Status.Conditions, controllers.ConditionReady); tt.condition == controllers.ConditionBrokerReady &&
				(ready == nil || ready.Reason != tt.reason || !strings.Contains(ready.Message, tt.want[len(tt.want)-1])) {
				t.Errorf("Ready = %+v, want it to carry the broker's reason", ready)
			}
		})
	}
}

// The running operator watches its pods: a broker pod that starts failing
// to pull its image shows in status without any change to the Platform.
func TestTheOperatorNoticesAPodThatCannotStart(t *testing.T) {
	p := testgen.Platform("podwatch", testgen.WithNamespace(liveNamespace), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "BrokerReady observed", func() error {
		if meta.FindStatusCondition(get(t, p).Status.Conditions, controllers.ConditionBrokerReady) == nil {
			return errNotYet
		}
		return nil
	})
	createPod(t, p, "podwatch-nats-0", render.ComponentBroker, "nats:2.15.2", waiting("ErrImagePull", "pull access denied"))
	eventually(t, "BrokerReady says the image cannot be pulled", func() error {
		c := meta.FindStatusCondition(get(t, p).Status.Conditions, controllers.ConditionBrokerReady)
		if c.Reason != "ImagePullFailed" || !strings.Contains(c.Message, "pod podwatch-nats-0 cannot pull image nats:2.15.2") {
			return fmt.Errorf("BrokerReady %s: %s", c.Reason, c.Message)
		}
		return nil
	})
}

var errNotYet = errors.New("not yet")
