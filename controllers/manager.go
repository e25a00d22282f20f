package controllers

import (
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/internal/render"
)

// LeaderElectionID names the Lease the operator's replicas compete for.
const LeaderElectionID = "switchboard-operator.platform.switchboard.dev"

// CacheOptions limit the manager's cache of child kinds to the objects this
// operator manages, so it never holds every Deployment and Secret of the
// cluster, and drop managedFields, which the reconciler never reads. The
// operator and the tests that stand in for it use the same options.
func CacheOptions(scheme *runtime.Scheme) (cache.Options, error) {
	children, err := childObjects(scheme)
	if err != nil {
		return cache.Options{}, err
	}
	byObject := make(map[client.Object]cache.ByObject, len(children))
	for _, obj := range children {
		byObject[obj] = cache.ByObject{Label: render.ManagedBySelector()}
	}
	return cache.Options{ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()}, nil
}
