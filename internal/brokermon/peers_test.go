package brokermon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-dev/switchboard/internal/loopback"
)

func TestDeparted(t *testing.T) {
	view := func(leader string, peers ...Peer) *Server {
		return &Server{Name: leader, JetStream: JSZ{Meta: &MetaCluster{Name: "shop", Leader: leader, Size: len(peers) + 1, Replicas: peers}}}
	}
	follower := &Server{Name: "shop-nats-1", JetStream: JSZ{Meta: &MetaCluster{Leader: "shop-nats-0", Replicas: []Peer{{Name: "shop-nats-2", Offline: true}}}}}
	for _, tc := range []struct {
		name     string
		servers  []*Server
		replicas int32
		want     []string
	}{
		{"scaled 3 → 2: the third is offline", []*Server{view("shop-nats-0", Peer{Name: "shop-nats-1", Current: true}, Peer{Name: "shop-nats-2", Offline: true})}, 2, []string{"shop-nats-2"}},
		{"scaled 5 → 3: two are offline", []*Server{view("shop-nats-1", Peer{Name: "shop-nats-0", Current: true}, Peer{Name: "shop-nats-2", Current: true}, Peer{Name: "shop-nats-3", Offline: true}, Peer{Name: "shop-nats-4", Offline: true})}, 3, []string{"shop-nats-3", "shop-nats-4"}},
		{"a departing pod still terminating is left for later", []*Server{view("shop-nats-0", Peer{Name: "shop-nats-1", Current: true}, Peer{Name: "shop-nats-2", Current: true})}, 2, nil},
		{"an offline member that should run is a failure, not a departure", []*Server{view("shop-nats-0", Peer{Name: "shop-nats-1", Offline: true}, Peer{Name: "shop-nats-2", Current: true})}, 3, nil},
		{"another StatefulSet's server is not ours to remove", []*Server{view("shop-nats-0", Peer{Name: "shopping-nats-5", Offline: true}, Peer{Name: "shop-nats-x", Offline: true}, Peer{Name: "shop-nats-07", Offline: true})}, 2, nil},
		{"only the leader knows who is offline", []*Server{follower}, 2, nil},
		{"no servers", nil, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Departed(tc.servers, "shop-nats", tc.replicas); !slices.Equal(got, tc.want) {
				t.Errorf("Departed = %v, want %v", got, tc.want)
			}
		})
	}
}

// threeNodes starts three clustered servers, each with a system account
// holding the user "sys" and an application user "app", as the rendered
// nats.conf of a clustered broker has them.
func threeNodes(t *testing.T) []*server.Server {
	t.Helper()
	ports := make([]int, 3)
	var routes []string
	for i := range ports {
		p, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	nodes := make([]*server.Server, 3)
	for i := range nodes {
		sys := server.NewAccount("SYS")
		nodes[i] = startServer(t, &server.Options{
			ServerName: fmt.Sprintf("shop-nats-%d", i),
			Cluster:    server.ClusterOpts{Name: "shop", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
			Accounts:   []*server.Account{sys}, SystemAccount: "SYS",
			Users: []*server.User{{Username: "sys", Password: "sys-password", Account: sys}, {Username: "app", Password: "app-password"}},
		}, 4<<20)
	}
	return nodes
}

// views reads the monitor of every running node.
func views(t *testing.T, nodes []*server.Server) []*Server {
	t.Helper()
	var out []*Server
	for _, n := range nodes {
		if !n.Running() {
			continue
		}
		v, err := (&Client{}).Server(context.Background(), monitorURL(n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// waitFor polls the running nodes' monitors until ok holds of them.
func waitFor(t *testing.T, nodes []*server.Server, what string, ok func([]*Server) bool) []*Server {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v := views(t, nodes)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s, still not %s: %+v", what, ClusterOf(v))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A scale-down from three servers to two: the third, once gone, is offline
// in the leader's view; removing it as the system user leaves a group of
// two, both current. An application user may not remove it. (Scaled up
// again, the server rejoins on its volume once nats-server's peer-remove
// timeout, five minutes, has passed: too long to wait for here.)
func TestRemovingADepartedServer(t *testing.T) {
	nodes := threeNodes(t)
	waitFor(t, nodes, "a meta leader with 3 current peers", func(v []*Server) bool {
		c := ClusterOf(v)
		return c != nil && c.Leader != "" && c.Current == 3
	})

	nodes[2].Shutdown()
	nodes[2].WaitForShutdown()
	v := waitFor(t, nodes, "shop-nats-2 offline to the leader", func(v []*Server) bool {
		return len(Departed(v, "shop-nats", 2)) == 1
	})
	gone := Departed(v, "shop-nats", 2)
	if !slices.Equal(gone, []string{"shop-nats-2"}) {
		t.Fatalf("Departed = %v, want [shop-nats-2]", gone)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := nodes[0].ClientURL()
	if err := (&PeerRemover{}).Remove(ctx, url, "app", "app-password", gone); err == nil {
		t.Fatal("an application user removed a server from the meta group")
	}
	if err := (&PeerRemover{}).Remove(ctx, url, "sys", "sys-password", gone); err != nil {
		t.Fatal(err)
	}
	waitFor(t, nodes, "a meta group of two, both current", func(v []*Server) bool {
		c := ClusterOf(v)
		return c != nil && c.Size == 2 && c.Current == 2 && len(Departed(v, "shop-nats", 2)) == 0
	})
}

func TestRemoveWithoutALeaderSaysWhy(t *testing.T) {
	nodes := threeNodes(t)
	waitFor(t, nodes, "a meta leader", func(v []*Server) bool {
		c := ClusterOf(v)
		return c != nil && c.Leader != ""
	})
	nodes[1].Shutdown()
	nodes[2].Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := (&PeerRemover{}).Remove(ctx, nodes[0].ClientURL(), "sys", "sys-password", []string{"shop-nats-2"})
	if err == nil || !strings.Contains(err.Error(), "shop-nats-2") {
		t.Fatalf("removing without a quorum: %v, want an error naming the server", err)
	}
	t.Log(err)
}
