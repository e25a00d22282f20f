package render

import (
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// childKinds is every kind Platform renders. It is the one list of them:
// the operator derives from it, through its scheme, what it watches, what
// its cache holds and what it prunes. TestEveryRenderedKindIsAChildKind
// keeps render within it, and a test in controllers keeps the reconciler's
// RBAC markers equal to it.
var childKinds = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("Secret"),
	corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	corev1.SchemeGroupVersion.WithKind("Service"),
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"),
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"),
}

// ChildKinds returns every kind Platform renders.
func ChildKinds() []schema.GroupVersionKind { return slices.Clone(childKinds) }
