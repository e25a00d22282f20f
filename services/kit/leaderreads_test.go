package kit_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// On a replicated bucket a read is answered by the stream's leader, which
// acknowledged the writes before it, even for a service connected to a
// follower. The KV API's read is a direct get, which any replica may
// answer, the nearest first, and a follower applies a write after the
// leader acknowledged it (the cluster run saw a notification's claim read
// back as missing). Here the replicas are too close to lag, so the test
// watches where the reads go.
func TestAReadSeesTheWriteBeforeItOnAReplicatedBucket(t *testing.T) {
	ctx := context.Background()
	c, _, leader := ordersOnThreeServers(t)
	var followerURL string
	for _, srv := range c.servers {
		if srv.Name() != leader {
			followerURL = srv.ClientURL()
			break
		}
	}
	env := c.env(3)
	env[catalog.EnvNATSURL] = followerURL
	for _, up := range []string{"product", "payment"} {
		env[catalog.EnvGRPC(up)] = up + ".invalid:9090"
	}
	cfg, err := kit.LoadConfig("order", kit.Needs{}, kit.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	onFollower, err := kit.ConnectBus(cctx, cfg, quiet, kit.NewMetrics("order"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(onFollower.Close)

	// Every read's request, seen by a subscriber of the two read APIs.
	var msgGets, directGets atomic.Int64
	watch, err := nats.Connect(followerURL, nats.UserInfo("test", "test-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	for subject, n := range map[string]*atomic.Int64{"$JS.API.STREAM.MSG.GET.KV_orders": &msgGets, "$JS.API.DIRECT.GET.KV_orders.>": &directGets} {
		if _, err := watch.Subscribe(subject, func(*nats.Msg) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}

	store, _ := kit.NewStore[counter](onFollower.Bucket("orders"))
	const writes = 100
	for i := range writes {
		rev, err := store.Create(ctx, fmt.Sprint("ada.o", i), counter{N: i})
		if err != nil {
			t.Fatal(err)
		}
		if v, got, err := store.Get(ctx, fmt.Sprint("ada.o", i)); err != nil || got != rev || v.N != i {
			t.Fatalf("read right after write %d (revision %d): revision %d, %+v, %v", i, rev, got, v, err)
		}
	}
	if err := onFollower.Bucket("orders").Delete(ctx, "ada.o0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Get(ctx, "ada.o0"); !errors.Is(err, kit.ErrNotFound) {
		t.Fatalf("a deleted key reads %v, want ErrNotFound", err)
	}
	if _, _, err := store.Get(ctx, "ada.none"); !errors.Is(err, kit.ErrNotFound) {
		t.Fatalf("a key never written reads %v, want ErrNotFound", err)
	}
	kittest.Eventually(t, 5*time.Second, "every read's request seen", func() bool { return msgGets.Load()+directGets.Load() >= writes+2 })
	if msgGets.Load() != writes+2 || directGets.Load() != 0 {
		t.Fatalf("of %d reads, %d went to the leader (message get) and %d were direct gets any replica may answer", writes+2, msgGets.Load(), directGets.Load())
	}
}

// A read whose answer never comes ends, as nats.go's own calls do, even
// when its caller set no deadline: the chaos run's sagas and consumers
// otherwise waited for ever on a read sent as the broker restarted.
func TestAReadWithNoDeadlineEndsWhenItsAnswerNeverComes(t *testing.T) {
	broker := kittest.StartNATS(t, "")
	bus := broker.Bus(t, "order")
	// The broker goes away: the client buffers the request for its
	// reconnection, and no answer comes.
	broker.Server.Shutdown()
	broker.Server.WaitForShutdown()
	done := make(chan error, 1)
	go func() {
		_, err := bus.Bucket("orders").Get(context.Background(), "ada.o1")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a read with no broker answered")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a read with no deadline and no answer still waits after 30 s")
	}
}

// A read while the bucket's stream has no leader (its server lost) waits
// for the election and answers, as the direct gets of the followers did;
// one that gets no answer in time is a 503 to retry, not an internal
// error. The cluster run's broker failover saw an order cancelled with
// "product unavailable: internal error".
func TestAReadWaitsForTheStreamsNewLeader(t *testing.T) {
	ctx := context.Background()
	c, owner, leader := ordersOnThreeServers(t)
	store, _ := kit.NewStore[counter](owner.Bucket("orders"))
	rev, err := store.Create(ctx, "ada.o1", counter{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.servers {
		if s.Name() == leader {
			s.Shutdown() // the stream's leader goes, with no step-down
			s.WaitForShutdown()
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if v, got, err := store.Get(rctx, "ada.o1"); err != nil || got != rev || v.N != 1 {
		t.Fatalf("a read while the stream elects a new leader: revision %d (want %d), %+v, %v", got, rev, v, err)
	}

	if e := kit.AsError(fmt.Errorf("get: %w", kit.ErrBrokerUnavailable)); e.Status != 503 || e.Code != kit.CodeUnavailable || e.RetryAfter == 0 {
		t.Fatalf("a read the broker did not answer is %+v, want a 503 to retry", e)
	}
}

// ordersOnThreeServers is a three-server cluster, order connected to it
// with its bucket at three replicas, and the name of the server leading
// the bucket's stream.
func ordersOnThreeServers(t *testing.T) (*cluster, *kit.Bus, string) {
	t.Helper()
	c := startCluster(t)
	c.start(2)
	c.waitForMeta(3)
	owner := c.connect("order", 3)
	return c, owner, replicatedLeader(t, owner, "KV_orders")
}

// replicatedLeader waits for stream to have three replicas, a leader and
// two followers, and returns the leader's server name.
func replicatedLeader(t *testing.T, b *kit.Bus, stream string) string {
	t.Helper()
	var leader string
	kittest.Eventually(t, 60*time.Second, stream+" at three replicas with a leader", func() bool {
		s, err := b.JS.Stream(context.Background(), stream)
		if err != nil {
			return false
		}
		info := s.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		leader = info.Cluster.Leader
		return true
	})
	return leader
}
