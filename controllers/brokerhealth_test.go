package controllers_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/brokermon"
	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// startBrokers starts one embedded nats-server per name, clustered when
// there are several, each with JetStream, a file store of maxStore bytes
// and its monitor on a loopback port, as the broker pods run them.
func startBrokers(t *testing.T, maxStore int64, names ...string) []*server.Server {
	t.Helper()
	return startBrokersWith(t, maxStore, nil, names...)
}

// startBrokersWith is startBrokers with each server's options finished by
// configure, when it is not nil.
func startBrokersWith(t *testing.T, maxStore int64, configure func(*server.Options), names ...string) []*server.Server {
	t.Helper()
	ports := make([]int, len(names))
	var routes []string
	for i := range names {
		p, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i, name := range names {
		opts := &server.Options{
			ServerName: name, Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: maxStore, JetStreamMaxMemory: 1 << 20,
			NoLog: true, NoSigs: true,
		}
		if len(names) > 1 {
			opts.Cluster = server.ClusterOpts{Name: "shop", Host: "127.0.0.1", Port: ports[i]}
			opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		if configure != nil {
			configure(opts)
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			s.Shutdown()
			t.Fatal("nats-server not ready")
		}
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	return servers
}

// monitorOf is a brokermon.Client whose connections for broker pod host
// "<server name>.<headless service>..." go to that embedded server's
// monitor: the operator asks the names it would ask in a cluster, and the
// embedded servers answer.
func monitorOf(servers []*server.Server) controllers.BrokerMonitor {
	addrs := map[string]string{}
	for _, s := range servers {
		addrs[s.Name()] = s.MonitorAddr().String()
	}
	dialer := &net.Dialer{}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := strings.Cut(addr, ".")
		if a, ok := addrs[host]; ok {
			return dialer.DialContext(ctx, network, a)
		}
		return nil, fmt.Errorf("no broker %s here", host)
	}}
	return &brokermon.Client{HTTP: &http.Client{Transport: transport}}
}

// fill stores about n bytes in a file stream of s.
func fill(t *testing.T, s *server.Server, n int) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(testCtx, jetstream.StreamConfig{Name: "PLAYBACK", Subjects: []string{"playback.>"}}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 16<<10)
	for sent := 0; sent < n; sent += len(payload) {
		if _, err := js.Publish(testCtx, "playback.heartbeat", payload); err != nil {
			t.Fatalf("after %d bytes: %v", sent, err)
		}
	}
}

// BrokerStorage follows how full the broker's JetStream store is, as its
// monitor says: available at first, nearly full above 80 % (with a Warning
// Event and the metric), unknown when no monitor answers.
func TestBrokerStorageFollowsTheMonitor(t *testing.T) {
	const store = 2 << 20
	servers := startBrokers(t, store, "st-nats-0")
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	log := &eventLog{}
	r.Recorder = log
	r.BrokerMonitor = monitorOf(servers)
	p := createAndReconcile(t, r, testgen.Platform("st", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce)))
	if err := conditionOf(t, p, controllers.ConditionBrokerStorage, metav1.ConditionUnknown, "BrokerNotReady", "no broker replica is ready"); err != nil {
		t.Error(err)
	}

	markReady(t, p)
	reconcile(t, r, p)
	if err := conditionOf(t, p, controllers.ConditionBrokerStorage, metav1.ConditionTrue, "StorageAvailable", "st-nats-0 uses 0% of its JetStream store (0 of 2Mi)"); err != nil {
		t.Error(err)
	}

	fill(t, servers[0], store*85/100)
	reconcile(t, r, p)
	if err := conditionOf(t, p, controllers.ConditionBrokerStorage, metav1.ConditionFalse, "StorageNearlyFull", "raise spec.broker.jetstream.size"); err != nil {
		t.Error(err)
	}
	if got := log.warnings(); len(got) != 1 || got[0] != "Warning BrokerStorageNearlyFull" {
		t.Errorf("Warning Events %v, want one BrokerStorageNearlyFull", got)
	}
	if v := storageMetric(t, ns, "st", "st-nats-0"); v <= 0.8 || v > 1 {
		t.Errorf("switchboard_broker_jetstream_storage_used_ratio = %v, want above 0.8", v)
	}
	reconcile(t, r, p)
	if got := log.warnings(); len(got) != 1 {
		t.Errorf("Warning Events %v after a second reconcile, want still one", got)
	}

	servers[0].Shutdown()
	reconcile(t, r, p)
	if err := conditionOf(t, p, controllers.ConditionBrokerStorage, metav1.ConditionUnknown, "MonitorUnreachable", "check that NetworkPolicy st-nats admits the operator's namespace"); err != nil {
		t.Error(err)
	}
	// BrokerReady stays the pods' word: a monitor out of reach is not a broker down.
	if c := meta.FindStatusCondition(get(t, p).Status.Conditions, controllers.ConditionBrokerReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("BrokerReady %+v with the monitor out of reach, want True", c)
	}
}

// BrokerReady names the JetStream meta leader and how many peers are
// current, from the monitors of a live three-server cluster.
func TestBrokerReadyReportsTheJetStreamCluster(t *testing.T) {
	servers := startBrokers(t, 4<<20, "cl-nats-0", "cl-nats-1", "cl-nats-2")
	ns := newNamespace(t)
	r, _ := newDirectReconciler(t)
	r.BrokerMonitor = monitorOf(servers)
	p := createAndReconcile(t, r, testgen.Platform("cl", testgen.WithNamespace(ns), testgen.WithWorkloads(v1alpha1.WorkloadCommerce), testgen.WithBrokerReplicas(3)))
	markReady(t, p)
	eventually(t, "BrokerReady names the meta leader and 3/3 current peers", func() error {
		reconcile(t, r, p)
		return conditionOf(t, p, controllers.ConditionBrokerReady, metav1.ConditionTrue, "BrokerAvailable", "3/3 peers current")
	})
	c := meta.FindStatusCondition(get(t, p).Status.Conditions, controllers.ConditionBrokerReady)
	if !strings.Contains(c.Message, "JetStream cluster shop: meta leader cl-nats-") {
		t.Errorf("BrokerReady %q does not name the meta leader", c.Message)
	}

	// Without a quorum there is no meta leader: the pods may still look
	// ready to Kubernetes, but JetStream is not. A live cluster takes many
	// seconds to notice a lost quorum, so the servers' answers are played
	// from a captured follower's /jsz with the leader gone.
	r.BrokerMonitor = leaderless(t)
	reconcile(t, r, p)
	if err := conditionOf(t, p, controllers.ConditionBrokerReady, metav1.ConditionFalse, "NoMetaLeader", "JetStream cluster shop has no meta leader, so every JetStream request fails: a quorum (2 of 3)"); err != nil {
		t.Error(err)
	}
	if ready := meta.FindStatusCondition(get(t, p).Status.Conditions, controllers.ConditionReady); ready == nil || ready.Reason != "NoMetaLeader" {
		t.Errorf("Ready = %+v, want the broker's NoMetaLeader", ready)
	}
}

// leaderless answers every monitor with a captured follower's /jsz of a
// three-server cluster, whose meta leader is gone.
func leaderless(t *testing.T) controllers.BrokerMonitor {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "internal", "brokermon", "testdata", "jsz-3-node-follower.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var j brokermon.JSZ
	if err := brokermon.Decode(f, &j); err != nil {
		t.Fatal(err)
	}
	j.Meta.Leader = ""
	return monitorFunc(func(_ context.Context, url string) (*brokermon.Server, error) {
		name, _, _ := strings.Cut(strings.TrimPrefix(url, "http://"), ".")
		return &brokermon.Server{Name: name, JetStream: j}, nil
	})
}

type monitorFunc func(context.Context, string) (*brokermon.Server, error)

func (f monitorFunc) Server(ctx context.Context, url string) (*brokermon.Server, error) {
	return f(ctx, url)
}

func conditionOf(t *testing.T, p *v1alpha1.Platform, typ string, status metav1.ConditionStatus, reason, message string) error {
	t.Helper()
	c := meta.FindStatusCondition(get(t, p).Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, message) {
		return fmt.Errorf("%s = %+v, want %s %s containing %q", typ, c, status, reason, message)
	}
	return nil
}

// storageMetric reads the operator's storage gauge of one server.
func storageMetric(t *testing.T, ns, platform, server string) float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "switchboard_broker_jetstream_storage_used_ratio" {
			continue
		}
		for _, m := range f.Metric {
			if labels(m) == fmt.Sprintf("namespace=%s,platform=%s,server=%s", ns, platform, server) {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no storage sample for %s/%s %s", ns, platform, server)
	return 0
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.Label {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}
