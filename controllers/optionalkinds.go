package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// The operator reads only the CRDs of its optional kinds, by name, and only
// their metadata: whether one exists is all it needs.
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch,resourceNames=scaledobjects.keda.sh

// crdKind is the kind of a CustomResourceDefinition.
var crdKind = apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition")

// notServedRetry is how soon a reconcile runs again when an optional kind's
// CRD exists but its kind is not served yet. The CRD's own events do not
// say when the API server starts serving it (its Established condition is
// in its status, which a metadata-only watch does not see).
const notServedRetry = 5 * time.Second

// kindState is whether an optional child kind is served, and why not.
type kindState struct {
	served bool
	// reason and message explain a kind that is not served.
	reason, message string
	// retry asks for another reconcile soon: the kind may be served shortly.
	retry bool
}

// Reasons an optional kind is not served.
const (
	reasonCRDNotInstalled = "CRDNotInstalled"
	reasonCRDBeingDeleted = "CRDBeingDeleted"
	reasonCRDNotServed    = "CRDNotServed"
	reasonCRDUnreadable   = "CRDUnreadable"
)

// optionalKindStates returns, for each optional child kind, whether the
// API server serves it now. It never fails: a CRD it cannot read counts as
// absent, with the error in the message, so a missing permission costs the
// optional kind and not the whole Platform.
func (r *PlatformReconciler) optionalKindStates(ctx context.Context) map[schema.GroupVersionKind]kindState {
	states := map[schema.GroupVersionKind]kindState{}
	for _, gvk := range render.ChildKinds() {
		if name, optional := render.OptionalKindCRD(gvk); optional {
			states[gvk] = r.optionalKindState(ctx, gvk, name)
		}
	}
	return states
}

func (r *PlatformReconciler) optionalKindState(ctx context.Context, gvk schema.GroupVersionKind, name string) kindState {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdKind)
	switch err := r.Get(ctx, client.ObjectKey{Name: name}, crd); {
	case isNotFound(err):
		return kindState{reason: reasonCRDNotInstalled, message: fmt.Sprintf("CustomResourceDefinition %s is not installed", name)}
	case err != nil:
		return kindState{reason: reasonCRDUnreadable, message: fmt.Sprintf("cannot read CustomResourceDefinition %s: %v", name, err), retry: true}
	case !crd.DeletionTimestamp.IsZero():
		return kindState{reason: reasonCRDBeingDeleted, message: fmt.Sprintf("CustomResourceDefinition %s is being deleted", name)}
	}
	// The CRD exists; the API server serves its kind once it is
	// established. The RESTMapper asks discovery again when it does not
	// know the kind, so this also learns a kind installed after start.
	if _, err := r.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return kindState{reason: reasonCRDNotServed, message: fmt.Sprintf("CustomResourceDefinition %s is installed but %s is not served yet", name, gvk.GroupVersion()), retry: true}
		}
		return kindState{reason: reasonCRDUnreadable, message: fmt.Sprintf("cannot look up %s: %v", gvk.GroupVersion(), err), retry: true}
	}
	return kindState{served: true}
}

// optionalWatches starts the watch of an optional kind when its CRD
// appears and removes its informer when the CRD goes, so the operator puts
// back a ScaledObject edited by hand like any other child, without an
// informer that fails to list a kind the API server no longer serves.
type optionalWatches struct {
	mu       sync.Mutex
	ctrl     controller.Controller
	cache    cache.Cache
	scheme   *runtime.Scheme
	handler  handler.EventHandler
	watching map[schema.GroupVersionKind]bool
}

func newOptionalWatches(c controller.Controller, ca cache.Cache, scheme *runtime.Scheme, mapper meta.RESTMapper) *optionalWatches {
	return &optionalWatches{
		ctrl:     c,
		cache:    ca,
		scheme:   scheme,
		handler:  handler.EnqueueRequestForOwner(scheme, mapper, &v1alpha1.Platform{}, handler.OnlyControllerOwner()),
		watching: map[schema.GroupVersionKind]bool{},
	}
}

// sync starts or stops the watch of each optional kind to match states.
func (w *optionalWatches) sync(ctx context.Context, states map[schema.GroupVersionKind]kindState) error {
	if w == nil {
		return nil // a reconciler outside a manager (tests) has nothing to watch with
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for gvk, st := range states {
		if st.served == w.watching[gvk] {
			continue
		}
		obj, err := newTyped[client.Object](w.scheme, gvk)
		if err != nil {
			return err
		}
		if st.served {
			if err := w.ctrl.Watch(source.Kind(w.cache, obj, w.handler)); err != nil {
				return fmt.Errorf("watching %s: %w", gvk.Kind, err)
			}
			log.FromContext(ctx).Info("watching an optional kind: its CRD is installed", "kind", gvk.String())
		} else {
			if err := w.cache.RemoveInformer(ctx, obj); err != nil {
				return fmt.Errorf("stopping the watch of %s: %w", gvk.Kind, err)
			}
			log.FromContext(ctx).Info("stopped watching an optional kind", "kind", gvk.String(), "why", st.message)
		}
		w.watching[gvk] = st.served
	}
	return nil
}

// platformsForCRD enqueues every Platform when the CRD of an optional kind
// comes or goes: each may switch between its HPAs and ScaledObjects.
func (r *PlatformReconciler) platformsForCRD(ctx context.Context, crd client.Object) []reconcile.Request {
	if !isOptionalKindCRD(crd.GetName()) {
		return nil
	}
	var list v1alpha1.PlatformList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(err, "listing Platforms for a change of CRD", "crd", crd.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}

func isOptionalKindCRD(name string) bool {
	for _, gvk := range render.ChildKinds() {
		if crd, ok := render.OptionalKindCRD(gvk); ok && crd == name {
			return true
		}
	}
	return false
}

// optionalKindCRDNames are the CRDs the operator watches.
func optionalKindCRDNames() []string {
	var names []string
	for _, gvk := range render.ChildKinds() {
		if crd, ok := render.OptionalKindCRD(gvk); ok {
			names = append(names, crd)
		}
	}
	return names
}

// readerFor returns where to read objects of kind from: the cache, except
// for an optional kind, which is read from the API server. A cached read of
// a kind whose CRD has just gone would start an informer that never syncs
// and block the reconcile; a direct read fails at once instead.
func (r *PlatformReconciler) readerFor(kind schema.GroupVersionKind) client.Reader {
	if _, optional := render.OptionalKindCRD(kind); optional && r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}
