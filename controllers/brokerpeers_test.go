package controllers_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/brokermon"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// startSystemBrokers starts n clustered embedded servers named as
// Platform p's broker pods, whose system account has the user of c, as the
// rendered nats.conf of a clustered broker has it.
func startSystemBrokers(t *testing.T, p *v1alpha1.Platform, c render.Credentials, n int) []*server.Server {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", render.BrokerName(p), i)
	}
	return startBrokersWith(t, 4<<20, func(o *server.Options) {
		sys := server.NewAccount("SYS")
		o.Accounts, o.SystemAccount = []*server.Account{sys}, "SYS"
		o.Users = []*server.User{{Username: c.SystemUser, Password: c.SystemPassword, Account: sys}}
	}, names...)
}

// dialTo is a nats.CustomDialer that sends every connection to the broker's
// Service name to an embedded server's client port.
type dialTo struct{ addr string }

func (d dialTo) Dial(network, _ string) (net.Conn, error) { return net.Dial(network, d.addr) }

// Scaling a clustered broker down, five servers to three, removes the
// departed servers from the JetStream meta group, as the system user of
// <p>-auth, once the leader sees them offline: the group of the servers
// left is whole again, and says so in BrokerReady.
func TestScalingDownRemovesTheDepartedServer(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	log := &eventLog{}
	r.Recorder = log
	p := createAndReconcile(t, r, testgen.Platform("sd", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithBrokerReplicas(5)))
	auth := &corev1.Secret{}
	if err := k8s.Get(testCtx, client.ObjectKey{Namespace: ns, Name: render.AuthSecretName(p)}, auth); err != nil {
		t.Fatal(err)
	}
	creds, ok := render.CredentialsFromSecret(auth)
	if !ok {
		t.Fatalf("Secret %s lacks a credential: keys %v", auth.Name, keys(auth.Data))
	}
	servers := startSystemBrokers(t, p, creds, 5)
	watchBrokers(t, r, p, servers)
	if got := log.count(corev1.EventTypeNormal + " BrokerPeersRemoved"); got != 0 {
		t.Fatalf("%d BrokerPeersRemoved Events with every server running", got)
	}

	// Scale to three: the StatefulSet's controller stops the two last pods.
	scaleToThree(t, r, p, servers)

	eventually(t, "the departed servers removed and BrokerReady with 3/3 peers current", func() error {
		reconcile(t, r, p)
		if log.count(corev1.EventTypeNormal+" BrokerPeersRemoved") == 0 {
			return fmt.Errorf("no BrokerPeersRemoved Event yet (events %v)", log.all())
		}
		return conditionOf(t, p, controllers.ConditionBrokerReady, metav1.ConditionTrue, "BrokerAvailable", "3/3 peers current")
	})
	reconcile(t, r, p)
	if got := log.count(corev1.EventTypeNormal + " BrokerPeersRemoved"); got != 1 {
		t.Errorf("%d BrokerPeersRemoved Events, want one: removed servers are not removed again", got)
	}
	if n := log.count(corev1.EventTypeWarning + " BrokerPeerRemovalFailed"); n != 0 {
		t.Errorf("%d BrokerPeerRemovalFailed Warnings", n)
	}
}

// Without the system user's credentials the removal is refused, and the
// reconcile says so: a Warning Event and Degraded, retried.
func TestARefusedRemovalIsReported(t *testing.T) {
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	log := &eventLog{}
	r.Recorder = log
	p := createAndReconcile(t, r, testgen.Platform("rf", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithBrokerReplicas(5)))
	servers := startSystemBrokers(t, p, render.Credentials{SystemUser: "someone-else-entirely", SystemPassword: "not-the-secrets-password"}, 5)
	watchBrokers(t, r, p, servers)
	scaleToThree(t, r, p, servers)
	eventually(t, "a BrokerPeerRemovalFailed Warning", func() error {
		req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}
		if _, err := r.Reconcile(context.Background(), req); err == nil {
			return fmt.Errorf("the reconcile succeeded; events %v", log.all())
		}
		if log.count(corev1.EventTypeWarning+" BrokerPeerRemovalFailed") == 0 {
			return fmt.Errorf("no Warning yet: %v", log.all())
		}
		return conditionOf(t, p, controllers.ConditionDegraded, metav1.ConditionTrue, "BrokerPeerRemovalFailed", "connecting to the broker as its system user")
	})
}

// watchBrokers points r at the five embedded brokers and waits for
// BrokerReady to see them all current.
func watchBrokers(t *testing.T, r *controllers.PlatformReconciler, p *v1alpha1.Platform, servers []*server.Server) {
	t.Helper()
	r.BrokerMonitor = monitorOf(servers)
	r.BrokerPeers = &brokermon.PeerRemover{Dialer: dialTo{servers[0].Addr().String()}}
	markReady(t, p)
	eventually(t, "BrokerReady with 5/5 peers current", func() error {
		reconcile(t, r, p)
		return conditionOf(t, p, controllers.ConditionBrokerReady, metav1.ConditionTrue, "BrokerAvailable", "5/5 peers current")
	})
}

// scaleToThree sets spec.broker.replicas to 3 and stops the two last
// servers, as the StatefulSet's controller stops their pods.
func scaleToThree(t *testing.T, r *controllers.PlatformReconciler, p *v1alpha1.Platform, servers []*server.Server) {
	t.Helper()
	latest := get(t, p)
	latest.Spec.Broker.Replicas = 3
	if err := k8s.Update(testCtx, latest); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r, p)
	markReady(t, p)
	for _, s := range servers[3:] {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (l *eventLog) count(event string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e == event {
			n++
		}
	}
	return n
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
