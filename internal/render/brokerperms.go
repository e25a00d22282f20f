package render

import (
	"fmt"
	"slices"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// BrokerPermissions are what one broker user may publish and subscribe
// to. Both are allow lists: nats-server refuses every other subject.
type BrokerPermissions struct {
	Publish, Subscribe []string
}

// JetStream's subjects, as nats.go (jetstream and the legacy API it uses
// for KV watches) and nats-server spell them. Streams and consumers are
// the last tokens of the API subjects; the ack and flow-control subjects
// are the v1 forms, which the server sends unless its JetStream ack v2
// feature flag is on (the rendered nats.conf never turns it on).
const (
	jsAPI           = "$JS.API."
	jsAccountInfo   = jsAPI + "INFO"
	jsStreamCreate  = jsAPI + "STREAM.CREATE."
	jsStreamUpdate  = jsAPI + "STREAM.UPDATE."
	jsStreamInfo    = jsAPI + "STREAM.INFO."
	jsConsumerMake  = jsAPI + "CONSUMER.CREATE."
	jsConsumerInfo  = jsAPI + "CONSUMER.INFO."
	jsConsumerNext  = jsAPI + "CONSUMER.MSG.NEXT."
	jsConsumerDrop  = jsAPI + "CONSUMER.DELETE."
	jsDirectGet     = jsAPI + "DIRECT.GET."
	jsMsgGet        = jsAPI + "STREAM.MSG.GET."
	jsAck           = "$JS.ACK."
	jsFlowControl   = "$JS.FC."
	kvStreamPrefix  = "KV_"
	kvSubjectPrefix = "$KV."
)

// PermissionsFor derives a service's broker permissions from its catalog
// row and the platform's broker services (running: catalog.BrokerServices
// of the enabled ones), which decide what it owns, and nothing else:
//
//   - $JS.API.INFO, which nats.go asks before it creates a bucket, if it
//     owns one;
//   - for every stream holding a subject it publishes or consumes, and
//     the dead-letter stream if it consumes: the stream's info; and its
//     create and update calls only if it owns the stream
//     (catalog.StreamOwner): kit creates or updates what it owns at start,
//     to its catalog config, replicas and limits, and waits for the
//     rest. Never delete or purge;
//   - every subject it publishes, exactly, and the dead-letter subject of
//     each of its consumers (catalog.Service.DeadLetters), where kit puts
//     what the consumer gives up on; reading or replaying dead letters is
//     for the administrative user (switchboard dlq);
//   - for every durable consumer of its row: creating that consumer by
//     its name (the durable names are the service's own) with its one
//     filter (catalog.Consumer.Filter) in the subject, where the broker
//     checks it against the request, so it cannot be re-created reading
//     more; its info, pulling its messages and acknowledging them. For a
//     former durable a consumer replaces (catalog.Consumer.Replaces): its
//     info and deletion, so kit can take it over and retire it;
//   - for every bucket it writes or reads: its KV_ stream's info, and its
//     create and update calls only if it owns the bucket
//     (catalog.BucketOwner); direct gets of its keys, and the ordered
//     consumers of watches and key listings: creating them filtered to its
//     keys (and through the legacy ephemeral endpoint, the stream's name
//     alone, which nats.go uses while reconnecting before it has learned
//     the server's version; the server refuses a durable there, and a KV
//     stream holds only the bucket's keys), their flow control, and
//     deleting them when the watch stops
//     (nats.go waits for that answer, seconds, if it is refused). Their
//     names are random and no service may list a stream's consumers, so
//     one cannot name another's watch to delete it;
//   - for every bucket it writes: publishing to its keys ($KV.<bucket>.>),
//     which puts, creates, updates and deletes entries. A bucket it only
//     reads gets no publish permission at all;
//   - subscribing to its own reply inbox (catalog.InboxPrefix), and to
//     nothing else: the answers of the JetStream API, publish acks and
//     pulled messages all arrive there.
//
// The order follows the row, so the rendered nats.conf stays stable.
func PermissionsFor(svc catalog.Service, running []string) (BrokerPermissions, error) {
	var pub []string
	add := func(subjects ...string) {
		for _, s := range subjects {
			if !slices.Contains(pub, s) {
				pub = append(pub, s)
			}
		}
	}
	if !svc.UsesBroker() {
		return BrokerPermissions{}, nil
	}
	buckets := slices.Concat(svc.Buckets, svc.Reads)
	ownsBucket := func(b string) bool { owner, _ := catalog.BucketOwner(b, running); return owner == svc.Name }
	if slices.ContainsFunc(buckets, ownsBucket) {
		add(jsAccountInfo)
	}

	streams, err := svc.Streams()
	if err != nil {
		return BrokerPermissions{}, err
	}
	for _, st := range streams {
		if owner, _ := catalog.StreamOwner(st.Name, running); owner == svc.Name {
			add(jsStreamCreate+st.Name, jsStreamUpdate+st.Name)
		}
		add(jsStreamInfo + st.Name)
	}
	add(svc.Publishes...)
	add(svc.DeadLetters()...)

	for _, c := range svc.Consumers {
		filter, err := c.Filter()
		if err != nil {
			return BrokerPermissions{}, fmt.Errorf("%s: %w", svc.Name, err)
		}
		st, err := catalog.StreamFor(c.Subjects[0])
		if err != nil {
			return BrokerPermissions{}, fmt.Errorf("%s: %w", svc.Name, err)
		}
		on := st.Name + "." + c.Durable
		add(jsConsumerMake+on+"."+filter, jsConsumerInfo+on, jsConsumerNext+on, jsAck+on+".>")
		if c.Replaces != "" {
			former := st.Name + "." + c.Replaces
			add(jsConsumerInfo+former, jsConsumerDrop+former)
		}
	}

	for _, b := range buckets {
		stream, keys := kvStreamPrefix+b, kvSubjectPrefix+b+".>"
		if ownsBucket(b) {
			add(jsStreamCreate+stream, jsStreamUpdate+stream)
		}
		// Reads go to the stream's leader (kit's leaderReads), a message
		// get; the KV API itself still reads by direct get. A bucket's
		// stream holds its keys only, so neither reaches further than the
		// other.
		add(jsStreamInfo+stream,
			jsMsgGet+stream,
			jsDirectGet+stream+"."+keys,
			jsConsumerMake+stream, jsConsumerMake+stream+".*", jsConsumerMake+stream+".*."+keys, jsConsumerDrop+stream+".*",
			jsFlowControl+stream+".>")
	}
	for _, b := range svc.Buckets {
		add(kvSubjectPrefix + b + ".>")
	}
	return BrokerPermissions{Publish: pub, Subscribe: []string{catalog.InboxPrefix(svc.Name) + ".>"}}, nil
}
