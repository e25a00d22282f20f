package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// prune deletes children of p that are no longer desired: those of a
// disabled service or a removed workload, NetworkPolicies switched off, a
// broker PDB after scaling to one replica. Candidates are found by the
// platform's labels and must be controlled by p; names are never guessed.
//
// A kind the API server does not serve (an optional kind whose CRD is gone)
// has nothing to prune: deleting its CRD deleted its objects.
func (r *PlatformReconciler) prune(ctx context.Context, p *v1alpha1.Platform, desired []client.Object, served func(schema.GroupVersionKind) bool) ([]string, error) {
	keep := make(map[string]bool, len(desired))
	for _, obj := range desired {
		gvk, err := apiutil.GVKForObject(obj, r.Scheme)
		if err != nil {
			return nil, err
		}
		keep[gvk.Kind+"/"+obj.GetName()] = true
	}

	var pruned []string
	for _, kind := range render.ChildKinds() {
		if !served(kind) {
			continue
		}
		list, err := newTyped[client.ObjectList](r.Scheme, listKind(kind))
		if err != nil {
			return pruned, err
		}
		if err := r.readerFor(kind).List(ctx, list, client.InNamespace(p.Namespace),
			client.MatchingLabelsSelector{Selector: render.PlatformSelector(p)}); err != nil {
			return pruned, fmt.Errorf("listing %T: %w", list, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return pruned, err
		}
		for _, item := range items {
			obj := item.(client.Object)
			ref := kind.Kind + "/" + obj.GetName()
			if keep[ref] || !metav1.IsControlledBy(obj, p) || !obj.GetDeletionTimestamp().IsZero() {
				continue
			}
			if err := r.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return pruned, fmt.Errorf("deleting %s: %w", ref, err)
			}
			pruned = append(pruned, ref)
		}
	}
	return pruned, nil
}
