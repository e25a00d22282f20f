package render

import (
	"slices"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	ScaledObjectKind,
}

// optionalKinds are the child kinds served by a CustomResourceDefinition
// that another project installs, by the name of that CRD. Render produces
// them only when Options says the CRD is there, and the operator watches,
// caches and prunes them only while it is: a watch or a list of a kind the
// API server does not serve fails.
var optionalKinds = map[schema.GroupVersionKind]string{
	ScaledObjectKind: ScaledObjectCRD,
}

// ChildKinds returns every kind Platform renders, optional ones included.
func ChildKinds() []schema.GroupVersionKind { return slices.Clone(childKinds) }

// OptionalKindCRD returns the name of the CustomResourceDefinition that
// serves kind when kind is optional, and false for a kind every API server
// serves.
func OptionalKindCRD(kind schema.GroupVersionKind) (crd string, optional bool) {
	crd, optional = optionalKinds[kind]
	return crd, optional
}

// AddToScheme registers the Go types of the child kinds that client-go's
// scheme lacks (KEDA's), so the operator's scheme knows every child kind.
func AddToScheme(s *runtime.Scheme) error { return kedav1alpha1.AddToScheme(s) }
