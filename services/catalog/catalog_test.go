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
