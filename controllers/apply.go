package controllers

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/switchboard-dev/switchboard/internal/render"
)

// applyAll applies each desired object that differs from the live one and
// returns "Kind/name" for each object it wrote.
func (r *PlatformReconciler) applyAll(ctx context.Context, desired []client.Object) ([]string, error) {
	var applied []string
	for _, obj := range desired {
		wrote, err := r.apply(ctx, obj)
		if err != nil {
			return applied, err
		}
		if wrote {
			applied = append(applied, objectRef(obj))
		}
	}
	return applied, nil
}

// apply writes one object with server-side apply under the operator's field
// manager, forcing ownership so hand edits of our fields are put back.
//
// Steady state must be quiet: when every field we would apply already has
// the desired value on the live object (read from the cache), no request is
// sent. Fields the server or other actors add, such as defaults or the
// replicas an HPA sets on a Deployment we leave unset, do not count as drift.
func (r *PlatformReconciler) apply(ctx context.Context, obj client.Object) (bool, error) {
	want, err := render.Applied(obj)
	if err != nil {
		return false, err
	}
	gvk, err := apiutil.GVKForObject(obj, r.Scheme)
	if err != nil {
		return false, err
	}
	liveObj, err := r.Scheme.New(gvk)
	if err != nil {
		return false, err
	}
	live := liveObj.(client.Object)
	switch err := r.readerFor(gvk).Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case err == nil:
		have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
		if err != nil {
			return false, err
		}
		// Typed reads drop apiVersion and kind; the key already matched them.
		have["apiVersion"], have["kind"] = want["apiVersion"], want["kind"]
		d := drift(have, want, "")
		if d == "" {
			d = extraData(have, want)
		}
		if d == "" {
			return false, nil
		}
		log.FromContext(ctx).V(1).Info("child drifted", "object", objectRef(obj), "field", d)
	case !isNotFound(err):
		return false, fmt.Errorf("reading %s: %w", objectRef(obj), err)
	}

	u := &unstructured.Unstructured{Object: want}
	u.SetGroupVersionKind(gvk)
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner(render.FieldManager), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("applying %s: %w", objectRef(obj), err)
	}
	return true, nil
}

// drift returns the path of the first field of want that have lacks or
// holds with another value, or "" when have carries all of want. Maps may
// hold extra keys (server defaults, other managers' fields); lists must match
// element by element.
func drift(have, want any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return path
		}
		for k, wv := range w {
			hv, ok := h[k]
			if !ok {
				return path + "." + k
			}
			if d := drift(hv, wv, path+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return path
		}
		for i := range w {
			if d := drift(h[i], w[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	default:
		if reflect.DeepEqual(have, want) {
			return ""
		}
		return path
	}
}

// extraData returns the path of a key the live Secret or ConfigMap holds
// in its data and the desired one no longer does, or "". The operator owns
// these objects whole, and a key it stops applying must go: a dropped token
// key, or the token key older versions kept in <p>-auth. The apply that
// follows removes it, as server-side apply removes the fields its manager
// stops sending.
func extraData(have, want map[string]any) string {
	if k := want["kind"]; k != "Secret" && k != "ConfigMap" {
		return ""
	}
	h, _ := have["data"].(map[string]any)
	w, _ := want["data"].(map[string]any)
	for k := range h {
		if _, ok := w[k]; !ok {
			return ".data." + k
		}
	}
	return ""
}

func objectRef(obj client.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = reflect.TypeOf(obj).Elem().Name()
	}
	return kind + "/" + obj.GetName()
}

// summarize shortens a list of object references for an Event message.
func summarize(refs []string) string {
	sorted := append([]string(nil), refs...)
	sort.Strings(sorted)
	const max = 6
	if len(sorted) <= max {
		return fmt.Sprintf("%d object(s): %s", len(sorted), strings.Join(sorted, ", "))
	}
	return fmt.Sprintf("%d objects: %s and %d more", len(sorted), strings.Join(sorted[:max], ", "), len(sorted)-max)
}
