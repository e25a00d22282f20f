package brokermon

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/internal/loopback"
)

var update = flag.Bool("update", false, "rewrite the captured monitor answers in testdata/")

// startServer starts an embedded nats-server with JetStream, a file store
// limited to maxStore bytes and its monitor on a loopback port.
func startServer(t *testing.T, opts *server.Options, maxStore int64) *server.Server {
	t.Helper()
	opts.Host, opts.HTTPHost, opts.HTTPPort = "127.0.0.1", "127.0.0.1", -1
	if opts.Port == 0 {
		opts.Port = -1
	}
	opts.JetStream, opts.StoreDir, opts.JetStreamMaxStore, opts.JetStreamMaxMemory = true, t.TempDir(), maxStore, 1<<20
	opts.NoLog, opts.NoSigs = true, true
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
	return s
}

func monitorURL(s *server.Server) string { return "http://" + s.MonitorAddr().String() }

// A single server: its name, its store's use against its limit, and no
// meta cluster.
func TestASingleServer(t *testing.T) {
	const limit = 4 << 20
	s := startServer(t, &server.Options{ServerName: "shop-nats-0"}, limit)
	c := &Client{}
	got, err := c.Server(context.Background(), monitorURL(s))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "shop-nats-0" || got.JetStream.Disabled || got.JetStream.Meta != nil {
		t.Errorf("server %+v, want shop-nats-0 with JetStream and no meta cluster", got)
	}
	if used, max := got.StorageUsed(); max != limit || used != 0 {
		t.Errorf("storage %d of %d, want 0 of %d", used, max, limit)
	}
	if cl := ClusterOf([]*Server{got}); cl != nil {
		t.Errorf("ClusterOf a single server = %+v, want nil", cl)
	}

	fill(t, s, 1<<20)
	got, err = c.Server(context.Background(), monitorURL(s))
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := got.StorageUsed(); used < 1<<20 {
		t.Errorf("storage used %d after storing 1 MiB", used)
	}
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
	ctx := context.Background()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "FILL", Subjects: []string{"fill.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 16<<10)
	for sent := 0; sent < n; sent += len(payload) {
		if _, err := js.Publish(ctx, "fill.x", payload); err != nil {
			t.Fatal(err)
		}
	}
}

// Three clustered servers: the leader's view says who leads and that every
// peer is current. The answers are captured in testdata, which
// TestACapturedThreeNodeCluster reads without starting servers.
func TestALiveThreeNodeCluster(t *testing.T) {
	ports := make([]int, 3)
	for i := range ports {
		p, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i, p := range ports {
		servers = append(servers, startServer(t, &server.Options{
			ServerName: fmt.Sprintf("shop-nats-%d", i),
			Cluster:    server.ClusterOpts{Name: "shop", Host: "127.0.0.1", Port: p},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}, 4<<20))
	}
	c := &Client{}
	var got []*Server
	var cl *Cluster
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = got[:0]
		for _, s := range servers {
			srv, err := c.Server(context.Background(), monitorURL(s))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, srv)
		}
		if cl = ClusterOf(got); cl != nil && cl.Leader != "" && cl.Current == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no meta leader with 3 current peers after 30s: %+v", cl)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if cl.Name != "shop" || cl.Size != 3 || len(cl.Behind) != 0 || !strings.HasPrefix(cl.Leader, "shop-nats-") {
		t.Errorf("cluster %+v", cl)
	}
	if *update {
		for _, s := range got {
			role := "follower"
			if s.Name == cl.Leader {
				role = "leader"
			}
			body := rawJSZ(t, servers, s.Name)
			if err := os.WriteFile(filepath.Join("testdata", "jsz-3-node-"+role+".json"), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// rawJSZ is /jsz of the named server, as it answers it.
func rawJSZ(t *testing.T, servers []*server.Server, name string) []byte {
	t.Helper()
	for _, s := range servers {
		if s.Name() != name {
			continue
		}
		info, err := s.Jsz(nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	t.Fatalf("no server %s", name)
	return nil
}

// The captured answers of a three-node cluster: the leader's view counts
// current peers, a follower's only names the leader; and a leader that
// sees a peer offline or behind says which.
func TestACapturedThreeNodeCluster(t *testing.T) {
	read := func(role string) *Server {
		f, err := os.Open(filepath.Join("testdata", "jsz-3-node-"+role+".json"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var j JSZ
		if err := Decode(f, &j); err != nil {
			t.Fatal(err)
		}
		if j.Meta == nil {
			t.Fatalf("%s: no meta_cluster", role)
		}
		name := j.Meta.Leader
		if role == "follower" {
			name = "a follower"
		}
		return &Server{Name: name, JetStream: j}
	}
	leader, follower := read("leader"), read("follower")

	if cl := ClusterOf([]*Server{follower, leader}); cl == nil || cl.Current != 3 || cl.Size != 3 || cl.Leader != leader.Name || cl.Name != "shop" {
		t.Errorf("with the leader's view: %+v", cl)
	}
	if cl := ClusterOf([]*Server{follower}); cl == nil || cl.Current != -1 || cl.Leader != leader.Name {
		t.Errorf("with a follower's view only: %+v, want the leader named and currency unknown", cl)
	}
	if used, max := leader.StorageUsed(); max != 4<<20 || used != 0 {
		t.Errorf("storage %d of %d", used, max)
	}

	degraded := *leader
	meta := *leader.JetStream.Meta
	meta.Replicas = []Peer{{Name: "shop-nats-1", Current: true}, {Name: "shop-nats-2", Offline: true}}
	degraded.JetStream.Meta = &meta
	want := &Cluster{Name: "shop", Leader: leader.Name, Size: 3, Current: 2, Behind: []string{"shop-nats-2 (offline)"}}
	if cl := ClusterOf([]*Server{&degraded}); !reflect.DeepEqual(cl, want) {
		t.Errorf("a peer offline: %+v, want %+v", cl, want)
	}
}

// The minimal structs decode what the server's own types encode.
func TestFieldsMatchTheServersTypes(t *testing.T) {
	sj := server.JSInfo{
		JetStreamStats: server.JetStreamStats{Memory: 11, Store: 12},
		Config:         server.JetStreamConfig{MaxMemory: 13, MaxStore: 14},
		Meta: &server.MetaClusterInfo{Name: "c", Leader: "a", Size: 3, Replicas: []*server.PeerInfo{
			{Name: "b", Current: true, Lag: 5}, {Name: "d", Offline: true},
		}},
	}
	var j JSZ
	roundTrip(t, sj, &j)
	want := JSZ{Config: JetStreamConfig{MaxMemory: 13, MaxStore: 14}, Memory: 11, Store: 12,
		Meta: &MetaCluster{Name: "c", Leader: "a", Size: 3, Replicas: []Peer{{Name: "b", Current: true, Lag: 5}, {Name: "d", Offline: true}}}}
	if !reflect.DeepEqual(j, want) {
		t.Errorf("jsz %+v, want %+v", j, want)
	}
	var v Varz
	roundTrip(t, server.Varz{Name: "shop-nats-0"}, &v)
	if v.Name != "shop-nats-0" {
		t.Errorf("varz %+v", v)
	}
}

func roundTrip(t *testing.T, from any, into any) {
	t.Helper()
	b, err := json.Marshal(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(strings.NewReader(string(b)), into); err != nil {
		t.Fatal(err)
	}
}

func TestAMonitorThatDoesNotAnswer(t *testing.T) {
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Client{}).Server(context.Background(), fmt.Sprintf("http://127.0.0.1:%d", port)); err == nil {
		t.Error("no error from a port nothing listens on")
	}
}

// The monitor's answer is untrusted input: Decode must never panic.
func FuzzDecode(f *testing.F) {
	for _, role := range []string{"leader", "follower"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "jsz-3-node-"+role+".json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"meta_cluster":{"cluster_size":-1}}`))
	f.Add([]byte(`{"server_name":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j JSZ
		if Decode(strings.NewReader(string(b)), &j) == nil {
			s := &Server{JetStream: j}
			s.StorageUsed()
			ClusterOf([]*Server{s, nil})
		}
		var v Varz
		_ = Decode(strings.NewReader(string(b)), &v)
	})
}
