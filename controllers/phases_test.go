package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

var errInjected = errors.New("injected failure")

// Each phase of a reconcile fails the same way: the reconcile stops, the
// Degraded condition names the phase's reason, a Warning Event is recorded
// where the phase has one, and the error is returned for a retry unless
// retrying cannot help.
func TestAFailedPhaseStopsTheReconcileAndIsReported(t *testing.T) {
	cases := []struct {
		name string
		// funcs break one call of the reconciler's client; listed is true
		// once the pruner has listed children (observe comes after it).
		funcs         func(listed *bool) interceptor.Funcs
		servicesImage string
		reason        string
		event         bool
		retried       bool
	}{
		{
			name: "credentials that cannot be read are retried, without an Event",
			funcs: func(*bool) interceptor.Funcs {
				return interceptor.Funcs{Get: failGet[*corev1.Secret](nil)}
			},
			reason: "CredentialsFailed", retried: true,
		},
		{
			name:          "a spec that cannot be rendered is recorded and waits for a change",
			funcs:         func(*bool) interceptor.Funcs { return interceptor.Funcs{} },
			servicesImage: "-",
			reason:        "RenderFailed", event: true,
		},
		{
			name: "a failed apply is recorded and retried",
			funcs: func(*bool) interceptor.Funcs {
				return interceptor.Funcs{Apply: func(context.Context, client.WithWatch, runtime.ApplyConfiguration, ...client.ApplyOption) error {
					return errInjected
				}}
			},
			reason: "ApplyFailed", event: true, retried: true,
		},
		{
			name: "a failed prune is recorded and retried",
			funcs: func(*bool) interceptor.Funcs {
				return interceptor.Funcs{List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
					return errInjected
				}}
			},
			reason: "PruneFailed", event: true, retried: true,
		},
		{
			name: "children that cannot be observed are retried, without an Event",
			funcs: func(listed *bool) interceptor.Funcs {
				return interceptor.Funcs{
					List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
						*listed = true
						return c.List(ctx, list, opts...)
					},
					Get: failGet[*appsv1.StatefulSet](listed),
				}
			},
			reason: "ObserveFailed", retried: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			p := testgen.Platform("pf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
			if err := k8s.Create(testCtx, p); err != nil {
				t.Fatal(err)
			}
			wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
			if err != nil {
				t.Fatal(err)
			}
			var listed bool
			recorder := &eventLog{}
			image := testImage
			if tc.servicesImage == "-" {
				image = "" // and the Platform names none: nothing to run
			}
			r := &controllers.PlatformReconciler{
				Client:        interceptor.NewClient(wc, tc.funcs(&listed)),
				APIReader:     k8s,
				Scheme:        scheme,
				Recorder:      recorder,
				ServicesImage: image,
			}

			_, err = r.Reconcile(testCtx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: p.Name}})
			if retried := err != nil; retried != tc.retried {
				t.Errorf("Reconcile returned %v; want an error to retry: %v", err, tc.retried)
			}
			p = get(t, p)
			degraded := meta.FindStatusCondition(p.Status.Conditions, controllers.ConditionDegraded)
			if degraded == nil || degraded.Status != metav1.ConditionTrue || degraded.Reason != tc.reason {
				t.Errorf("Degraded = %+v, want True with reason %s", degraded, tc.reason)
			}
			if ready := meta.FindStatusCondition(p.Status.Conditions, controllers.ConditionReady); ready == nil || ready.Reason != tc.reason {
				t.Errorf("Ready = %+v, want False with reason %s", ready, tc.reason)
			}
			if p.Status.ObservedGeneration != 0 {
				t.Errorf("observedGeneration %d after a failed reconcile, want it unset", p.Status.ObservedGeneration)
			}
			var want []string
			if tc.event {
				want = []string{"Warning " + tc.reason}
			}
			if got := recorder.warnings(); !slices.Equal(got, want) {
				t.Errorf("Warning Events %v, want %v", got, want)
			}
		})
	}
}

// failGet fails every Get of a T once *armed is true (always, when armed is nil).
func failGet[T client.Object](armed *bool) func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
	return func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(T); ok && (armed == nil || *armed) {
			return errInjected
		}
		return c.Get(ctx, key, obj, opts...)
	}
}

// eventLog records Events as "type reason".
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) Eventf(_, _ runtime.Object, eventtype, reason, _, _ string, _ ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf("%s %s", eventtype, reason))
}

func (l *eventLog) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if strings.HasPrefix(e, corev1.EventTypeWarning+" ") {
			out = append(out, e)
		}
	}
	return out
}
