package catalog_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

func TestEverySubjectHasAStream(t *testing.T) {
	for _, s := range catalog.All() {
		for _, subj := range slices.Concat(s.Publishes, s.Consumes()) {
			if _, err := catalog.StreamFor(subj); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}
	}
}

func TestConsumers(t *testing.T) {
	published := map[string]bool{}
	for _, s := range catalog.All() {
		for _, subj := range s.Publishes {
			published[subj] = true
		}
	}
	durables := map[string]string{}
	for _, s := range catalog.All() {
		for _, c := range s.Consumers {
			t.Run(c.Durable, func(t *testing.T) {
				if c.Durable != s.Name && !strings.HasPrefix(c.Durable, s.Name+"-") {
					t.Errorf("%s's consumer %q is not named after the service: two services could share it", s.Name, c.Durable)
				}
				if other, ok := durables[c.Durable]; ok {
					t.Errorf("%q is a consumer of both %s and %s", c.Durable, other, s.Name)
				}
				durables[c.Durable] = s.Name
				if len(c.Subjects) == 0 {
					t.Fatalf("%q has no subjects", c.Durable)
				}
				first, _ := catalog.StreamFor(c.Subjects[0])
				for _, subj := range c.Subjects {
					if st, _ := catalog.StreamFor(subj); st.Name != first.Name {
						t.Errorf("%q reads %s from %s and %s from %s: a consumer reads one stream", c.Durable, c.Subjects[0], first.Name, subj, st.Name)
					}
					if !published[subj] {
						t.Errorf("%q reads %s, which no service publishes", c.Durable, subj)
					}
				}
				if got, ok := s.Consumer(c.Durable); !ok || !slices.Equal(got.Subjects, c.Subjects) {
					t.Errorf("Consumer(%q) = %+v, %v", c.Durable, got, ok)
				}
			})
		}
	}
	if _, ok := (catalog.Service{}).Consumer("nobody"); ok {
		t.Error("a service without consumers found one")
	}
}

func TestConsumesFollowsTheConsumers(t *testing.T) {
	s, _ := catalog.Lookup("recommendation")
	want := []string{catalog.PlaybackStarted, catalog.PlaybackHeartbeat, catalog.PlaybackStopped, catalog.ContentEncoded}
	if got := s.Consumes(); !slices.Equal(got, want) {
		t.Fatalf("Consumes() = %v, want %v", got, want)
	}
}

// The operator scales a service on its own consumers' backlog only: a
// durable of another service, or none at all, would scale it on a queue it
// does not drain.
func TestLagScalingNamesTheServicesOwnConsumers(t *testing.T) {
	for _, s := range catalog.All() {
		if s.LagScaling == nil {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			if len(s.LagScaling.Durables) == 0 {
				t.Error("lag scaling names no durable consumer")
			}
			for _, d := range s.LagScaling.Durables {
				if _, ok := s.Consumer(d); !ok {
					t.Errorf("lag scaling names %q, which is not one of %s's consumers", d, s.Name)
				}
			}
			if s.LagScaling.LagThreshold < 1 {
				t.Errorf("lag threshold %d, want at least 1", s.LagScaling.LagThreshold)
			}
		})
	}
}

func TestEveryBucketIsDeclared(t *testing.T) {
	declared := map[string]bool{}
	for _, b := range catalog.KVBuckets {
		if declared[b.Name] {
			t.Errorf("bucket %s is declared twice", b.Name)
		}
		declared[b.Name] = true
	}
	used := map[string]bool{}
	for _, s := range catalog.All() {
		for _, b := range slices.Concat(s.Buckets, s.Reads) {
			used[b] = true
			if _, err := catalog.BucketFor(b); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}
		for _, b := range s.Reads {
			if slices.Contains(s.Buckets, b) {
				t.Errorf("%s both writes and only reads %s", s.Name, b)
			}
		}
	}
	for name := range declared {
		if !used[name] {
			t.Errorf("bucket %s is declared but no service uses it", name)
		}
	}
}

// Who holds what of the tokens: the issuers alone sign and revoke; every
// other service that verifies tokens and talks to the broker watches the
// revocations; the gateway, which gets no broker access, checks only
// signatures, and the services behind it enforce revocation.
func TestTokenRoles(t *testing.T) {
	rev, err := catalog.BucketFor(catalog.TokenRevocations)
	if err != nil {
		t.Fatal(err)
	}
	if rev.TTL < catalog.MaxTokenTTL {
		t.Errorf("revocations live %s, less than a token's %s: a revoked token would come back", rev.TTL, catalog.MaxTokenTTL)
	}
	var issuers []string
	for _, s := range catalog.All() {
		t.Run(s.Name, func(t *testing.T) {
			switch {
			case s.IssuesTokens():
				issuers = append(issuers, s.Name)
				if !slices.Contains(s.Buckets, catalog.TokenRevocations) {
					t.Error("an issuer must write the revocation bucket: its sign-out revokes")
				}
			case s.Name == catalog.Gateway:
				if !s.VerifiesTokens() || len(s.Buckets)+len(s.Reads)+len(s.Publishes)+len(s.Consumers) > 0 {
					t.Errorf("the gateway verifies tokens and uses no broker: %+v", s)
				}
			case s.VerifiesTokens():
				if !slices.Contains(s.Reads, catalog.TokenRevocations) || slices.Contains(s.Buckets, catalog.TokenRevocations) {
					t.Error("a verifier reads the revocation bucket and never writes it")
				}
			default:
				if s.UsesBucket(catalog.TokenRevocations) {
					t.Error("a service that sees no token reads revocations")
				}
			}
		})
	}
	if !slices.Equal(issuers, []string{"user", "account"}) {
		t.Errorf("issuers %v, want user and account alone", issuers)
	}
}

// JetStream reserves every stream's and bucket's byte limit up front, so
// their shares must fit the store together, with headroom left for the
// broker itself.
func TestStorageSharesFitTheStore(t *testing.T) {
	var total int64
	for _, st := range catalog.Streams {
		if st.StoreShare <= 0 {
			t.Errorf("stream %s has no share of the store: it would be unbounded", st.Name)
		}
		if st.MaxAge <= 0 && st.Name != catalog.DeadLetterStream {
			t.Errorf("event stream %s keeps events for ever", st.Name)
		}
		if st.DiscardNew != (st.Name == catalog.DeadLetterStream) {
			t.Errorf("stream %s: DiscardNew = %v; only dead letters refuse new messages rather than age out old ones", st.Name, st.DiscardNew)
		}
		total += st.StoreShare
	}
	for _, b := range catalog.KVBuckets {
		if b.StoreShare <= 0 {
			t.Errorf("bucket %s has no share of the store: it would be unbounded", b.Name)
		}
		total += b.StoreShare
	}
	if total > catalog.StoreShareLimit {
		t.Fatalf("streams and buckets take %d‰ of the store, more than the %d‰ allowed", total, catalog.StoreShareLimit)
	}
	if got := catalog.MaxBytes(250, 1<<30); got != (1<<30)/4 {
		t.Errorf("MaxBytes(250‰, 1Gi) = %d", got)
	}
	if got := catalog.MaxBytes(250, 0); got != -1 {
		t.Errorf("MaxBytes without a store size = %d, want -1 (no limit)", got)
	}
}

func TestDeadLettersHaveAStreamAndAreTheServicesOwn(t *testing.T) {
	for _, s := range catalog.All() {
		if len(s.DeadLetters()) != len(s.Consumers) {
			t.Errorf("%s dead-letters %v for %d consumers", s.Name, s.DeadLetters(), len(s.Consumers))
		}
		for _, subj := range s.DeadLetters() {
			st, err := catalog.StreamFor(subj)
			if err != nil || st.Name != catalog.DeadLetterStream {
				t.Errorf("%s: dead letters on %s land in %q (%v)", s.Name, subj, st.Name, err)
			}
			if !strings.HasPrefix(subj, "dlq."+s.Name+".") {
				t.Errorf("%s dead-letters to %s, outside its own dlq.%s.>", s.Name, subj, s.Name)
			}
		}
	}
}

func TestStreamReplicasFollowTheBroker(t *testing.T) {
	for broker, want := range map[int]int{0: 1, 1: 1, 3: 3, 5: 3} {
		if got := catalog.StreamReplicas(broker); got != want {
			t.Errorf("StreamReplicas(%d) = %d, want %d", broker, got, want)
		}
	}
}

func TestCallersAreTheReverseOfUpstreams(t *testing.T) {
	for _, tt := range []struct {
		service string
		want    []string
	}{
		{"payment", []string{catalog.Gateway, "order"}},
		{"product", []string{catalog.Gateway, "order"}},
		{"account", []string{catalog.Gateway, "content", "playback"}},
		{"content", []string{catalog.Gateway, "playback"}},
		{"order", []string{catalog.Gateway}},
		{catalog.Gateway, nil},
	} {
		if got := catalog.Callers(tt.service); !slices.Equal(got, tt.want) {
			t.Errorf("Callers(%s) = %v, want %v", tt.service, got, tt.want)
		}
	}
}

// Every call between services (not the gateway's forwarding of the public
// API) is gRPC: a service another service calls must serve it.
func TestEveryInternalUpstreamServesGRPC(t *testing.T) {
	for _, s := range catalog.All() {
		t.Run(s.Name, func(t *testing.T) {
			var internal []string
			for _, c := range catalog.Callers(s.Name) {
				if c != catalog.Gateway {
					internal = append(internal, c)
				}
			}
			if len(internal) > 0 && !s.ServesGRPC() {
				t.Errorf("%v call %s, which serves no gRPC", internal, s.Name)
			}
			if s.ServesGRPC() && len(internal) == 0 {
				t.Errorf("%s serves gRPC %v, but no service calls it", s.Name, s.GRPC)
			}
		})
	}
}

// Only the gateway keeps no state and exchanges no events, so it alone has
// no broker user.
func TestUsesBroker(t *testing.T) {
	for _, s := range catalog.All() {
		if got, want := s.UsesBroker(), s.Name != catalog.Gateway; got != want {
			t.Errorf("%s: UsesBroker() = %v, want %v", s.Name, got, want)
		}
	}
}

// An inbox prefix is one subject token, distinct per service and apart
// from nats.go's default "_INBOX", so a permission on "<prefix>.>" covers
// one service's replies and nothing else.
func TestInboxPrefixes(t *testing.T) {
	seen := map[string]string{}
	for _, s := range catalog.All() {
		p := catalog.InboxPrefix(s.Name)
		if p == "_INBOX" || strings.ContainsAny(p, ".*> \t") {
			t.Errorf("%s: inbox prefix %q is not one token of its own", s.Name, p)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s share inbox prefix %q", s.Name, other, p)
		}
		seen[p] = s.Name
	}
}
