package kit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// cluster is three embedded nats-servers forming one JetStream cluster,
// each of which can be stopped and started again on its store.
type cluster struct {
	t       *testing.T
	opts    []*server.Options
	servers []*server.Server
}

// startCluster configures three servers and starts the first two. The
// first two know only each other's routes, so they form a cluster of two;
// the third, started later, joins it, as a new server does when the broker
// scales up. (Two servers configured for three would wait for the third
// before electing a meta leader.)
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var routes []string
	ports := make([]int, 3)
	for i := range ports {
		p, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i, p := range ports {
		known := routes[:2]
		if i == 2 {
			known = routes
		}
		c.opts = append(c.opts, &server.Options{
			ServerName: fmt.Sprintf("shop-nats-%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), Username: "test", Password: "test-password",
			Cluster: server.ClusterOpts{Name: "shop", Host: "127.0.0.1", Port: p},
			Routes:  server.RoutesFromStr(strings.Join(known, ",")), NoLog: true, NoSigs: true,
		})
	}
	c.servers = make([]*server.Server, 3)
	c.start(0)
	c.start(1)
	c.waitForMeta(2)
	t.Cleanup(func() {
		for _, s := range c.servers {
			if s != nil {
				s.Shutdown()
			}
		}
	})
	return c
}

// waitForMeta waits for a meta leader with n servers current.
func (c *cluster) waitForMeta(n int) {
	c.t.Helper()
	kittest.Eventually(c.t, 30*time.Second, fmt.Sprintf("a JetStream meta leader with %d servers current", n), func() bool {
		leader, current := false, 0
		for _, s := range c.servers {
			if s == nil {
				continue
			}
			leader = leader || s.JetStreamIsLeader()
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		return leader && current == n
	})
}

func (c *cluster) start(i int) {
	c.t.Helper()
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("%s not ready", o.ServerName)
	}
	c.servers[i] = s
}

// env is a service's env for the running servers and broker replicas.
func (c *cluster) env(replicas int) map[string]string {
	var urls []string
	for _, s := range c.servers {
		if s != nil {
			urls = append(urls, s.ClientURL())
		}
	}
	return map[string]string{
		catalog.EnvNATSURL: strings.Join(urls, ","), catalog.EnvNATSUser: "test", catalog.EnvNATSPassword: "test-password",
		catalog.EnvTokenKeys: kittest.TokenKeysPEM(), catalog.EnvBrokerReplicas: fmt.Sprint(replicas),
	}
}

// connect connects as service name would, once JetStream answers.
func (c *cluster) connect(name string, replicas int) *kit.Bus {
	c.t.Helper()
	env := c.env(replicas)
	if svc, ok := catalog.Lookup(name); ok {
		for _, up := range svc.Upstreams {
			env[catalog.EnvGRPC(up)] = up + ".invalid:9090"
		}
	}
	cfg, err := kit.LoadConfig(name, kit.Needs{}, kit.MapEnv(env))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := kit.ConnectBus(ctx, cfg, quiet, kit.NewMetrics(name))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(b.Close)
	return b
}

func replicasOf(t *testing.T, js jetstream.JetStream, stream string) int {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return st.CachedInfo().Config.Replicas
}

// Streams and buckets follow the broker's replicas in place, keeping their
// data: up to three while a server has not joined yet (the service serves
// on one copy meanwhile and grows them once it has), and back down to one.
func TestStreamsAndBucketsFollowTheBrokersReplicas(t *testing.T) {
	ctx := context.Background()
	// The third server has not joined yet, as when the broker scales up.
	c := startCluster(t)
	order := c.connect("order", 1)
	if err := order.Publish(ctx, "order.confirmed:o1", "orders/o1", confirmed); err != nil {
		t.Fatal(err)
	}
	orders, _ := kit.NewStore[counter](order.Bucket("orders"))
	if _, err := orders.Create(ctx, "ada.o1", counter{N: 7}); err != nil {
		t.Fatal(err)
	}
	if r := replicasOf(t, order.JS, "ORDERS"); r != 1 {
		t.Fatalf("ORDERS has %d replicas on a one-server broker", r)
	}

	// Services restart with BROKER_REPLICAS=3 before the third server
	// joined: three copies cannot be placed, yet they start and work.
	notification := c.connect("notification", 3)
	if err := notification.Ready(ctx); err != nil {
		t.Fatalf("not ready while the broker scales up: %v", err)
	}
	order3 := c.connect("order", 3)
	if err := order3.Publish(ctx, "order.confirmed:o2", "orders/o2", confirmed); err != nil {
		t.Fatalf("publishing while the broker scales up: %v", err)
	}
	notes, _ := kit.NewStore[counter](notification.Bucket("notifications"))
	if _, err := notes.Create(ctx, "ada.n1", counter{N: 1}); err != nil {
		t.Fatalf("a new bucket while the broker scales up: %v", err)
	}
	for _, st := range []string{"ORDERS", "KV_orders", "KV_notifications", "DLQ"} {
		if r := replicasOf(t, order3.JS, st); r != 1 {
			t.Fatalf("%s has %d replicas before the third server joined", st, r)
		}
	}

	// The third server joins: the updates owed go through, in place.
	c.start(2)
	c.waitForMeta(3)
	for _, st := range []string{"ORDERS", "PAYMENTS", "DLQ", "KV_orders", "KV_notifications", "KV_token-revocations"} {
		kittest.Eventually(t, 60*time.Second, st+" at three replicas", func() bool {
			s, err := order3.JS.Stream(ctx, st)
			return err == nil && s.CachedInfo().Config.Replicas == 3
		})
	}
	intact := func(when string) {
		t.Helper()
		st, err := order3.JS.Stream(ctx, "ORDERS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil || info.State.Msgs != 2 {
			t.Fatalf("%s: ORDERS holds %+v (%v), want both events", when, info, err)
		}
		for key, want := range map[*kit.Store[counter]]string{orders: "ada.o1", notes: "ada.n1"} {
			if _, _, err := key.Get(ctx, want); err != nil {
				t.Fatalf("%s: %s: %v", when, want, err)
			}
		}
	}
	intact("after growing to three replicas")

	// And back to one: updated at once, nothing lost.
	order1 := c.connect("order", 1)
	c.connect("notification", 1)
	for _, st := range []string{"ORDERS", "PAYMENTS", "DLQ", "KV_orders", "KV_notifications", "KV_token-revocations"} {
		if r := replicasOf(t, order1.JS, st); r != 1 {
			t.Fatalf("%s has %d replicas after the broker went back to one", st, r)
		}
	}
	intact("after shrinking to one replica")
}
