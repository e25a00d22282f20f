package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/internal/render"
)

// newTyped returns a new, empty object of kind gvk, made by the scheme.
func newTyped[T runtime.Object](scheme *runtime.Scheme, gvk schema.GroupVersionKind) (T, error) {
	var zero T
	obj, err := scheme.New(gvk)
	if err != nil {
		return zero, err
	}
	typed, ok := obj.(T)
	if !ok {
		return zero, fmt.Errorf("%s is a %T, not a %T", gvk, obj, zero)
	}
	return typed, nil
}

// listKind is the kind of a list of kind.
func listKind(kind schema.GroupVersionKind) schema.GroupVersionKind {
	return kind.GroupVersion().WithKind(kind.Kind + "List")
}

// childObjects returns an empty object of each kind render produces that
// every API server serves, for the watches and the cache, which take
// objects rather than kinds. The optional kinds are left out: a watch or a
// cache of a kind the API server does not serve fails (optionalWatches
// watches them while their CRD exists).
func childObjects(scheme *runtime.Scheme) ([]client.Object, error) {
	var objs []client.Object
	for _, gvk := range render.ChildKinds() {
		if _, optional := render.OptionalKindCRD(gvk); optional {
			continue
		}
		obj, err := newTyped[client.Object](scheme, gvk)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}
