package controllers_test

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// These tests run against the real manager (watches, cache, workqueue):
// nothing calls Reconcile by hand, so what comes back came back because the
// operator noticed.
func TestTheManagerPutsBackWhatDrifts(t *testing.T) {
	name := fmt.Sprintf("drift%d", time.Now().UnixNano()%100000)
	p := testgen.Platform(name, testgen.WithNamespace(liveNamespace), testgen.WithWorkloads(v1alpha1.WorkloadCommerce))
	if err := k8s.Create(testCtx, p); err != nil {
		t.Fatal(err)
	}
	orderKey := client.ObjectKey{Namespace: liveNamespace, Name: name + "-order"}
	waitForAllChildren(t, p)

	t.Run("a deleted Deployment comes back", func(t *testing.T) {
		d := &appsv1.Deployment{}
		mustGet(t, liveNamespace, orderKey.Name, d)
		oldUID := d.UID
		if err := k8s.Delete(testCtx, d); err != nil {
			t.Fatal(err)
		}
		eventually(t, "order Deployment recreated", func() error {
			d := &appsv1.Deployment{}
			if err := k8s.Get(testCtx, orderKey, d); err != nil {
				return err
			}
			if d.UID == oldUID {
				return fmt.Errorf("still the old object")
			}
			return nil
		})
	})

	t.Run("a hand-edited image is restored", func(t *testing.T) {
		d := &appsv1.Deployment{}
		mustGet(t, liveNamespace, orderKey.Name, d)
		d.Spec.Template.Spec.Containers[0].Image = "evil.example/switchboard:latest"
		if err := k8s.Update(testCtx, d, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "image restored", func() error {
			d := &appsv1.Deployment{}
			if err := k8s.Get(testCtx, orderKey, d); err != nil {
				return err
			}
			if img := d.Spec.Template.Spec.Containers[0].Image; img != testImage {
				return fmt.Errorf("image is %s", img)
			}
			return nil
		})
	})

	t.Run("a deleted Service comes back", func(t *testing.T) {
		svc := &corev1.Service{}
		mustGet(t, liveNamespace, name+"-gateway", svc)
		if err := k8s.Delete(testCtx, svc); err != nil {
			t.Fatal(err)
		}
		eventually(t, "gateway Service recreated", func() error {
			return k8s.Get(testCtx, client.ObjectKeyFromObject(svc), &corev1.Service{})
		})
	})

	t.Run("a deleted headless ops Service comes back, headless", func(t *testing.T) {
		svc := &corev1.Service{}
		mustGet(t, liveNamespace, name+"-order-ops", svc)
		if err := k8s.Delete(testCtx, svc); err != nil {
			t.Fatal(err)
		}
		eventually(t, "order's ops Service recreated", func() error {
			back := &corev1.Service{}
			if err := k8s.Get(testCtx, client.ObjectKeyFromObject(svc), back); err != nil {
				return err
			}
			if back.Spec.ClusterIP != corev1.ClusterIPNone || !back.Spec.PublishNotReadyAddresses {
				return fmt.Errorf("recreated with clusterIP %q, publishNotReadyAddresses %v", back.Spec.ClusterIP, back.Spec.PublishNotReadyAddresses)
			}
			return nil
		})
	})

	t.Run("a patched env var is put back", func(t *testing.T) {
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"order","env":[{"name":"PRODUCT_GRPC","value":"dns:///elsewhere:9090"}]}]}}}}`)
		d := &appsv1.Deployment{}
		mustGet(t, liveNamespace, orderKey.Name, d)
		if err := k8s.Patch(testCtx, d, client.RawPatch(types.StrategicMergePatchType, patch), client.FieldOwner("someone")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "PRODUCT_GRPC restored", func() error {
			d := &appsv1.Deployment{}
			if err := k8s.Get(testCtx, orderKey, d); err != nil {
				return err
			}
			if got := envByName(d.Spec.Template.Spec.Containers[0])["PRODUCT_GRPC"].Value; got == "dns:///elsewhere:9090" {
				return fmt.Errorf("PRODUCT_GRPC is still %s", got)
			}
			return nil
		})
	})

	eventually(t, "an Applied event on the Platform", func() error { return hasEvent(liveNamespace, "Applied") })
}

// waitForAllChildren waits until every object render wants for p exists.
func waitForAllChildren(t testing.TB, p *v1alpha1.Platform) {
	t.Helper()
	desired := desiredFor(t, p)
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := 0
		for _, obj := range desired {
			if err := k8s.Get(testCtx, client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object)); err != nil {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d children still missing after 60s", missing, len(desired))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
