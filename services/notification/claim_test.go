package notification

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// answerLosingProxy sits between a client and the broker. Once armed, it
// lets the first message published on a subject containing match reach
// the broker, drops everything the broker sends back from then on, and
// cuts the connection once stored() says the broker has it: a write the
// broker stored whose answer the client never got, as when the broker
// restarts at that instant. Later connections pass untouched. (A read of
// the key carries its subject too, inside the direct-get request's
// subject: match the write's "PUB $KV.<bucket>.<key>".)
type answerLosingProxy struct {
	ln     net.Listener
	target string
	match  []byte
	armed  atomic.Bool
	stored func() bool
	wg     sync.WaitGroup
}

func newAnswerLosingProxy(t *testing.T, target, match string, stored func() bool) *answerLosingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &answerLosingProxy{ln: ln, target: target, match: []byte(match), stored: stored}
	p.wg.Go(p.serve)
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *answerLosingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var mute atomic.Bool
		p.wg.Go(func() { // broker → client
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !mute.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
		})
		p.wg.Go(func() { // client → broker
			defer s.Close()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					hit := p.armed.Load() && bytes.Contains(buf[:n], p.match) && p.armed.CompareAndSwap(true, false)
					if hit {
						mute.Store(true)
					}
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
					if hit {
						for deadline := time.Now().Add(5 * time.Second); !p.stored() && time.Now().Before(deadline); {
							time.Sleep(10 * time.Millisecond)
						}
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// The claim is stored but its answer lost: the attempt sent nothing, so it
// gives the claim back, and the redelivery sends the message, once. (Taken
// for an attempt that may have sent, the claim made the redelivery mark it
// unknown and send nothing: the chaos run's seed 9 found an order whose
// cancellation e-mail never went out.)
func TestAClaimWhoseAnswerIsLostIsSentOnRedelivery(t *testing.T) {
	ctx := context.Background()
	broker := kittest.StartNATS(t, "")
	direct, _ := kit.NewStore[Notification](broker.Bus(t, "notification").Bucket("notifications"))
	data := []byte(`{"id":"o1","userId":"u1","email":"u1@example.com","total":1000,"items":[]}`)
	ev := kit.Event{ID: kit.EventID(catalog.OrderConfirmed, "o1"), Type: catalog.OrderConfirmed, Data: data}
	key := "u1." + idFor(ev.ID)
	claimed := func() bool {
		rec, _, err := direct.Get(ctx, key)
		return err == nil && rec.Status == StatusPending
	}
	px := newAnswerLosingProxy(t, strings.TrimPrefix(broker.URL, "nats://"), "PUB $KV.notifications."+key, claimed)
	via := *broker
	via.URL = "nats://" + px.ln.Addr().String()
	n, st, sender := recordingNotifier(t, via.Bus(t, "notification").Bucket("notifications"))

	px.armed.Store(true)
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := n.Handle(hctx, ev)
	cancel()
	if err == nil || errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("the attempt whose claim's answer was lost: %v, want an error (the consumer redelivers)", err)
	}
	if px.armed.Load() {
		t.Fatal("the claim never went through the proxy")
	}
	if len(sender.sent) != 0 {
		t.Fatalf("the attempt sent %d messages without knowing its claim", len(sender.sent))
	}
	kittest.Eventually(t, 10*time.Second, "the notifier's connection to come back", func() bool {
		_, _, err := st.Get(ctx, key)
		return err == nil
	})
	if err := n.Handle(ctx, ev); err != nil { // the redelivery
		t.Fatal(err)
	}
	rec, _, _ := direct.Get(ctx, key)
	if rec.Status != StatusSent || len(sender.sent) != 1 {
		t.Fatalf("after the redelivery: record %s, %d sent; want sent, once", rec.Status, len(sender.sent))
	}
}
