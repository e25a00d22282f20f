package catalog_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

func names(ss []catalog.Service) []string { return catalog.Names(ss) }

func without(all []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(n string) bool { return slices.Contains(drop, n) })
}

func TestOwners(t *testing.T) {
	whole := names(catalog.All())
	commerce := names(catalog.ForWorkloads(catalog.Commerce))
	streaming := names(catalog.ForWorkloads(catalog.Streaming))
	for _, tt := range []struct {
		name, resource string
		bucket         bool
		running        []string
		want           string
	}{
		{"an event stream is owned by its publisher", "ORDERS", false, whole, "order"},
		{"PLAYBACK by playback, not by its consumers", "PLAYBACK", false, whole, "playback"},
		{"the dead letters by the first service with consumers: user", catalog.DeadLetterStream, false, whole, "user"},
		{"the dead letters on a streaming platform by content", catalog.DeadLetterStream, false, streaming, "content"},
		{"the dead letters without user by notification", catalog.DeadLetterStream, false, without(commerce, "user"), "notification"},
		{"a stream whose publisher does not run by its first consumer", "ORDERS", false, without(commerce, "order"), "user"},
		{"a bucket by its writer", "orders", true, whole, "order"},
		{"the revocations by user, the first issuer", catalog.TokenRevocations, true, whole, "user"},
		{"the revocations on a streaming platform by account", catalog.TokenRevocations, true, streaming, "account"},
		{"the revocations without an issuer by their first reader", catalog.TokenRevocations, true, without(commerce, "user"), "product"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			owner := catalog.StreamOwner
			if tt.bucket {
				owner = catalog.BucketOwner
			}
			if got, ok := owner(tt.resource, tt.running); !ok || got != tt.want {
				t.Errorf("owner of %s = %q, %v; want %q", tt.resource, got, ok, tt.want)
			}
		})
	}
	if got, ok := catalog.StreamOwner("ORDERS", streaming); ok {
		t.Errorf("a streaming platform has an ORDERS owner: %s", got)
	}
}

// For every set of services a platform may run, each stream and bucket a
// running service uses has one owner, which runs and uses it too: no
// service waits for a stream nobody creates, whatever is disabled.
func TestEveryUsedStreamAndBucketHasARunningOwner(t *testing.T) {
	var broker []catalog.Service
	for _, s := range catalog.All() {
		if s.UsesBroker() {
			broker = append(broker, s)
		}
	}
	for mask := 1; mask < 1<<len(broker); mask++ {
		var running []catalog.Service
		for i, s := range broker {
			if mask&(1<<i) != 0 {
				running = append(running, s)
			}
		}
		run := names(running)
		for _, s := range running {
			streams, err := s.Streams()
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range streams {
				owner, ok := catalog.StreamOwner(st.Name, run)
				o, _ := catalog.Lookup(owner)
				ost, _ := o.Streams()
				if !ok || !slices.Contains(run, owner) || !slices.ContainsFunc(ost, func(x catalog.Stream) bool { return x.Name == st.Name }) {
					t.Fatalf("running %v: %s uses %s, owned by %q (%v)", run, s.Name, st.Name, owner, ok)
				}
			}
			for _, b := range slices.Concat(s.Buckets, s.Reads) {
				owner, ok := catalog.BucketOwner(b, run)
				o, _ := catalog.Lookup(owner)
				if !ok || !slices.Contains(run, owner) || !o.UsesBucket(b) {
					t.Fatalf("running %v: %s uses bucket %s, owned by %q (%v)", run, s.Name, b, owner, ok)
				}
			}
		}
	}
}

func TestBrokerServices(t *testing.T) {
	got := catalog.BrokerServices(catalog.ForWorkloads(catalog.Commerce))
	if want := []string{"user", "product", "order", "payment", "notification"}; !slices.Equal(got, want) {
		t.Errorf("BrokerServices(commerce) = %v, want %v (the gateway has no broker user)", got, want)
	}
}

func TestStreams(t *testing.T) {
	s, _ := catalog.Lookup("notification")
	got, err := s.Streams()
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, st := range got {
		n = append(n, st.Name)
	}
	if want := []string{"ORDERS", "PAYMENTS", catalog.DeadLetterStream}; !slices.Equal(n, want) {
		t.Errorf("notification's streams %v, want %v", n, want)
	}
}

func TestEveryConsumerHasOneFilter(t *testing.T) {
	for _, s := range catalog.All() {
		for _, c := range s.Consumers {
			f, err := c.Filter()
			if err != nil {
				t.Errorf("%s: %v", s.Name, err)
				continue
			}
			if len(c.Subjects) == 1 && f != c.Subjects[0] {
				t.Errorf("%s: filter %q, want its one subject %s", c.Durable, f, c.Subjects[0])
			}
			st, _ := catalog.StreamFor(c.Subjects[0])
			if len(c.Subjects) > 1 && f != st.Subjects[0] {
				t.Errorf("%s: filter %q, want its stream's %s", c.Durable, f, st.Subjects[0])
			}
		}
	}
	for _, tt := range []struct {
		name string
		c    catalog.Consumer
		want string // "" for an error
	}{
		{"one subject is the filter", catalog.Consumer{Durable: "x", Subjects: []string{catalog.OrderCreated}}, catalog.OrderCreated},
		{"every playback event is the stream's wildcard", catalog.Consumer{Durable: "x",
			Subjects: []string{catalog.PlaybackStopped, catalog.PlaybackStarted, catalog.PlaybackHeartbeat}}, "playback.>"},
		{"some order events cannot be pinned", catalog.Consumer{Durable: "x", Subjects: []string{catalog.OrderConfirmed, catalog.OrderRefunded}}, ""},
		{"no subject has no filter", catalog.Consumer{Durable: "x"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.Filter()
			if (err == nil) != (tt.want != "") || got != tt.want {
				t.Errorf("Filter() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// A replaced durable is the service's own former consumer, no longer one
// of anyone's, and its successors read its stream.
func TestReplacedConsumers(t *testing.T) {
	current := map[string]bool{}
	for _, s := range catalog.All() {
		for _, c := range s.Consumers {
			current[c.Durable] = true
		}
	}
	for _, s := range catalog.All() {
		streamOf := map[string]string{}
		for _, c := range s.Consumers {
			if c.Replaces == "" {
				continue
			}
			if current[c.Replaces] {
				t.Errorf("%s replaces %s, which is still a consumer", c.Durable, c.Replaces)
			}
			if !strings.HasPrefix(c.Replaces, s.Name+"-") && c.Replaces != s.Name {
				t.Errorf("%s replaces %s, not named after %s", c.Durable, c.Replaces, s.Name)
			}
			st, _ := catalog.StreamFor(c.Subjects[0])
			if prev, ok := streamOf[c.Replaces]; ok && prev != st.Name {
				t.Errorf("the successors of %s read %s and %s", c.Replaces, prev, st.Name)
			}
			streamOf[c.Replaces] = st.Name
		}
	}
}
