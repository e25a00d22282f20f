package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// LeaderElectionID names the Lease the operator's replicas compete for.
const LeaderElectionID = "switchboard-operator.platform.switchboard.dev"

// CacheOptions limit the manager's cache of child kinds to the objects this
// operator manages, so it never holds every Deployment and Secret of the
// cluster, and drop managedFields, which the reconciler never reads. The
// operator and the tests that stand in for it use the same options.
//
// The managed-by selector is also the default of any kind not listed: the
// optional kinds (a ScaledObject) cannot be listed, since the cache maps
// every listed kind to its resource when it starts, and their CRD may come
// later. Platforms, which carry no such label, are listed with no selector.
// Of CustomResourceDefinitions the cache holds only the optional kinds'
// one, metadata only.
func CacheOptions(scheme *runtime.Scheme) (cache.Options, error) {
	children, err := childObjects(scheme)
	if err != nil {
		return cache.Options{}, err
	}
	byObject := make(map[client.Object]cache.ByObject, len(children)+3)
	for _, obj := range children {
		byObject[obj] = cache.ByObject{Label: render.ManagedBySelector()}
	}
	// The pods of the operator's Deployments and StatefulSet carry its
	// labels, managed-by included.
	byObject[&corev1.Pod{}] = cache.ByObject{Label: render.ManagedBySelector()}
	byObject[&v1alpha1.Platform{}] = cache.ByObject{Label: labels.Everything()}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdKind)
	crds := cache.ByObject{Label: labels.Everything()}
	if names := optionalKindCRDNames(); len(names) == 1 {
		crds.Field = fields.OneTermEqualSelector("metadata.name", names[0])
	}
	byObject[crd] = crds
	return cache.Options{
		ByObject:             byObject,
		DefaultLabelSelector: render.ManagedBySelector(),
		DefaultTransform:     cache.TransformStripManagedFields(),
	}, nil
}

// WatchNamespaces limits o to namespaces: the operator then caches, and
// reconciles, Platforms and their children only there, and needs
// permissions only there (the chart's watchNamespaces renders a Role per
// namespace). Cluster-scoped kinds are unaffected: the optional kinds' CRD
// is still watched by name, cluster-wide. No namespaces leaves o
// cluster-wide.
func WatchNamespaces(o cache.Options, namespaces []string) cache.Options {
	if len(namespaces) == 0 {
		return o
	}
	o.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
	for _, ns := range namespaces {
		o.DefaultNamespaces[ns] = cache.Config{}
	}
	return o
}
