package catalog

import (
	"fmt"
	"slices"
)

// Who may change what on the broker. Subject permissions cannot limit what
// a stream update or a consumer's filter says, only who may send it, so
// each stream and bucket has one owner that creates and updates it, and
// each durable consumer carries its one filter in the subject of its
// create call, where the broker checks it.

// EnvBrokerServices names the services of the platform that talk to the
// broker, comma-separated, in table order. A service creates and updates
// only the streams and buckets it owns among them (StreamOwner,
// BucketOwner) and waits, not ready, for the others to exist.
const EnvBrokerServices = "BROKER_SERVICES"

// Streams lists the streams s uses, each once, in row order: those holding
// a subject it publishes or consumes, and the dead-letter stream if it has
// consumers.
func (s Service) Streams() ([]Stream, error) {
	var out []Stream
	for _, subj := range slices.Concat(s.Publishes, s.Consumes(), s.DeadLetters()) {
		st, err := StreamFor(subj)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		if !slices.ContainsFunc(out, func(o Stream) bool { return o.Name == st.Name }) {
			out = append(out, st)
		}
	}
	return out, nil
}

// writesStream reports whether s publishes into stream: its events, or
// dead letters.
func (s Service) writesStream(stream string) bool {
	return slices.ContainsFunc(slices.Concat(s.Publishes, s.DeadLetters()), func(subj string) bool {
		st, err := StreamFor(subj)
		return err == nil && st.Name == stream
	})
}

// readsStream reports whether one of s's consumers reads stream.
func (s Service) readsStream(stream string) bool {
	return slices.ContainsFunc(s.Consumes(), func(subj string) bool {
		st, err := StreamFor(subj)
		return err == nil && st.Name == stream
	})
}

// StreamOwner is the service that creates and updates stream on a platform
// running the services named in running: the first running service, in
// table order, that publishes into it (its events; for the dead-letter
// stream, its dead letters); when none runs, the first running service
// that consumes from it, so a consumer never waits for a publisher the
// platform does not run. Every other service using the stream only reads
// its info. ok is false when no running service uses it.
//
// On a whole platform each event stream's owner is its one publisher, and
// DLQ's is user (content's on a streaming-only platform): the dead letters
// of every service are kept safe from the other services' updates.
func StreamOwner(stream string, running []string) (owner string, ok bool) {
	return firstRunning(running, func(s Service) bool { return s.writesStream(stream) },
		func(s Service) bool { return s.readsStream(stream) })
}

// BucketOwner is the service that creates and updates bucket on a platform
// running the services named in running: the first running service, in
// table order, that writes it, else the first running one that reads it.
// For token-revocations, written by both issuers, that is user, or account
// on a platform without user; the other issuer still writes revocations,
// which is what issuing tokens takes, but cannot change the bucket.
func BucketOwner(bucket string, running []string) (owner string, ok bool) {
	return firstRunning(running, func(s Service) bool { return slices.Contains(s.Buckets, bucket) },
		func(s Service) bool { return slices.Contains(s.Reads, bucket) })
}

func firstRunning(running []string, tiers ...func(Service) bool) (string, bool) {
	for _, in := range tiers {
		for _, s := range services {
			if in(s) && slices.Contains(running, s.Name) {
				return s.Name, true
			}
		}
	}
	return "", false
}

// BrokerServices returns the names of those of ss that use the broker, in
// the order given: the value of EnvBrokerServices.
func BrokerServices(ss []Service) []string {
	var out []string
	for _, s := range ss {
		if s.UsesBroker() {
			out = append(out, s.Name)
		}
	}
	return out
}

// Filter is the one subject filter c's durable is created with. The broker
// checks a single filter against the subject of the create call
// ($JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>), so permissions can
// pin it; several filters travel in the request body only, where no
// permission reaches. So a consumer reads one subject, or every subject any
// service publishes into its stream, whose wildcard then reads exactly
// those: only the services listed publish there, and each only its own
// subjects. Any other set of subjects is refused: split such a consumer
// into one per subject.
func (c Consumer) Filter() (string, error) {
	if len(c.Subjects) == 0 {
		return "", fmt.Errorf("catalog: consumer %s reads no subject", c.Durable)
	}
	if len(c.Subjects) == 1 {
		return c.Subjects[0], nil
	}
	st, err := StreamFor(c.Subjects[0])
	if err != nil {
		return "", err
	}
	var published []string
	for _, s := range services {
		for _, subj := range s.Publishes {
			if sst, err := StreamFor(subj); err == nil && sst.Name == st.Name && !slices.Contains(published, subj) {
				published = append(published, subj)
			}
		}
	}
	same := len(published) == len(c.Subjects) && !slices.ContainsFunc(published, func(p string) bool { return !slices.Contains(c.Subjects, p) })
	if !same || len(st.Subjects) != 1 {
		return "", fmt.Errorf("catalog: consumer %s reads %v, some but not all of the subjects published into %s: "+
			"the broker can pin one filter per durable, so split it into one consumer per subject", c.Durable, c.Subjects, st.Name)
	}
	return st.Subjects[0], nil
}
