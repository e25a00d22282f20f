package kit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Why a message was dead-lettered (header Dlq-Reason, metric label).
const (
	// ReasonExhausted: its last delivery (ConsumerSpec.MaxDeliver) failed.
	ReasonExhausted = "exhausted"
	// ReasonPermanent: the handler returned ErrPermanent.
	ReasonPermanent = "permanent"
	// ReasonMalformed: it is not an event at all.
	ReasonMalformed = "malformed"
)

// A dead letter is the original message, its data and its headers, on
// catalog.DeadLetterSubject(service, durable), with these headers added.
// Nats-* headers are JetStream's instructions to the stream it is
// published to, so they are not copied as such: the original Nats-Msg-Id
// is kept as Dlq-Msg-Id.
const (
	HeaderDLQSubject    = "Dlq-Subject"    // the subject it was published on
	HeaderDLQStream     = "Dlq-Stream"     // the stream that held it
	HeaderDLQSequence   = "Dlq-Sequence"   // its sequence there
	HeaderDLQMsgID      = "Dlq-Msg-Id"     // its Nats-Msg-Id
	HeaderDLQService    = "Dlq-Service"    // the service whose consumer gave up
	HeaderDLQConsumer   = "Dlq-Consumer"   // that consumer's durable name
	HeaderDLQReason     = "Dlq-Reason"     // exhausted, permanent or malformed
	HeaderDLQError      = "Dlq-Error"      // the last error
	HeaderDLQDeliveries = "Dlq-Deliveries" // how often it was delivered
	HeaderDLQTime       = "Dlq-Time"       // when it was dead-lettered (RFC 3339)
)

// maxErrorHeader bounds the error text kept in a dead letter.
const maxErrorHeader = 1024

// DeadLetter publishes msg, received by the service's consumer durable, to
// its dead-letter subject, then terminates it. If the dead letter cannot be
// stored the message is kept and comes back later: nothing is dropped.
// Consume does this itself; a service that reads a consumer its own way
// calls it for a message it gives up on.
func (b *Bus) DeadLetter(ctx context.Context, durable string, msg jetstream.Msg, reason string, cause error) {
	if _, ok := b.svc.Consumer(durable); !ok {
		b.log.Error("kit: dead letter for a consumer not in the catalog row; keeping the message", "consumer", durable, "service", b.svc.Name)
		_ = msg.NakWithDelay(15 * time.Second)
		return
	}
	h := nats.Header{}
	for k, vs := range msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = slices.Clone(vs)
		}
	}
	origID := msg.Headers().Get(jetstream.MsgIDHeader)
	if origID != "" {
		h.Set(HeaderDLQMsgID, origID)
	}
	h.Set(HeaderDLQSubject, msg.Subject())
	h.Set(HeaderDLQService, b.svc.Name)
	h.Set(HeaderDLQConsumer, durable)
	h.Set(HeaderDLQReason, reason)
	h.Set(HeaderDLQError, headerText(cause.Error()))
	h.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	// Its own id makes a dead letter published twice (the term lost, the
	// message redelivered) one entry, while two consumers dead-lettering
	// the same event make two.
	dlqID := "dlq:" + durable + ":" + msg.Subject()
	if md, err := msg.Metadata(); err == nil {
		h.Set(HeaderDLQStream, md.Stream)
		h.Set(HeaderDLQSequence, strconv.FormatUint(md.Sequence.Stream, 10))
		h.Set(HeaderDLQDeliveries, strconv.FormatUint(md.NumDelivered, 10))
		dlqID = "dlq:" + durable + ":" + md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	dl := &nats.Msg{Subject: catalog.DeadLetterSubject(b.svc.Name, durable), Header: h, Data: msg.Data()}
	// A stopping service still dead-letters what it holds.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := b.JS.PublishMsg(pctx, dl, jetstream.WithMsgID(dlqID)); err != nil {
		b.log.Error("dead letter not stored; keeping the message", "consumer", durable, "subject", msg.Subject(),
			"reason", reason, "cause", cause, "err", err)
		b.metrics.EventsIn.WithLabelValues(durable, msg.Subject(), "retry").Inc()
		_ = msg.NakWithDelay(15 * time.Second)
		return
	}
	b.log.Error("event dead-lettered", "consumer", durable, "subject", msg.Subject(), "msgId", origID,
		"reason", reason, "err", cause)
	b.metrics.EventsIn.WithLabelValues(durable, msg.Subject(), "dead_letter").Inc()
	b.metrics.DeadLetters.WithLabelValues(durable, msg.Subject(), reason).Inc()
	_ = msg.TermWithReason(reason)
}

// headerText makes s fit a header value: one line, bounded.
func headerText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorHeader {
		s = s[:maxErrorHeader] + "…"
	}
	return s
}

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	// ID is its sequence in the dead-letter stream.
	ID         uint64    `json:"id"`
	Service    string    `json:"service"`
	Consumer   string    `json:"consumer"`
	Subject    string    `json:"subject"`
	MsgID      string    `json:"msgId,omitempty"`
	Reason     string    `json:"reason"`
	Error      string    `json:"error"`
	Deliveries int       `json:"deliveries,omitempty"`
	Time       time.Time `json:"time"`
	// Header and Data are the original message's.
	Header nats.Header `json:"-"`
	Data   []byte      `json:"-"`
}

func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	d := DeadLetter{ID: m.Sequence, Service: h.Get(HeaderDLQService), Consumer: h.Get(HeaderDLQConsumer),
		Subject: h.Get(HeaderDLQSubject), MsgID: h.Get(HeaderDLQMsgID), Reason: h.Get(HeaderDLQReason),
		Error: h.Get(HeaderDLQError), Time: m.Time, Header: nats.Header{}, Data: m.Data}
	d.Deliveries, _ = strconv.Atoi(h.Get(HeaderDLQDeliveries))
	for k, vs := range h {
		if !strings.HasPrefix(k, "Dlq-") {
			d.Header[k] = vs
		}
	}
	return d
}

// DeadLetterFilter is the subject that selects the dead letters of one
// consumer durable ("" for all).
func DeadLetterFilter(durable string) string {
	if durable == "" {
		return "dlq.>"
	}
	return "dlq.*." + durable
}

// DeadLetters lists the dead-letter stream, oldest first; a non-empty
// durable keeps that consumer's only.
func DeadLetters(ctx context.Context, js jetstream.JetStream, durable string) ([]DeadLetter, error) {
	st, err := js.Stream(ctx, catalog.DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil // no consumer ever started, so none ever gave up
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", catalog.DeadLetterStream, err)
	}
	var out []DeadLetter
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(DeadLetterFilter(durable)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dead letter at %d: %w", seq, err)
		}
		out = append(out, deadLetterOf(m))
		seq = m.Sequence + 1
	}
}

// DeadLetterByID reads one dead letter; jetstream.ErrMsgNotFound when
// there is none with that id.
func DeadLetterByID(ctx context.Context, js jetstream.JetStream, id uint64) (DeadLetter, error) {
	st, err := js.Stream(ctx, catalog.DeadLetterStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("stream %s: %w", catalog.DeadLetterStream, err)
	}
	m, err := st.GetMsg(ctx, id)
	if err != nil {
		return DeadLetter{}, err
	}
	if !strings.HasPrefix(m.Subject, "dlq.") {
		return DeadLetter{}, jetstream.ErrMsgNotFound
	}
	return deadLetterOf(m), nil
}

// ReplayID is the Nats-Msg-Id a dead letter is replayed with: derived from
// the original's, so that replaying one entry twice (two operators, or a
// retry after a lost answer) publishes it once, yet distinct from it, so
// that JetStream does not take the replay for the original within its
// duplicate window. Consumers recognise the event by its id in the data,
// which the replay keeps.
func ReplayID(d DeadLetter) string {
	base := d.MsgID
	if base == "" {
		base = "dlq"
	}
	return base + ":replay:" + strconv.FormatUint(d.ID, 10)
}

// Replay publishes a dead letter again on its original subject, with its
// original data and headers, then removes it from the dead-letter stream.
// Every consumer of that subject sees it again, and drops it if it had
// applied it (handlers are idempotent by event id).
func Replay(ctx context.Context, js jetstream.JetStream, d DeadLetter) error {
	if d.Subject == "" {
		return fmt.Errorf("dead letter %d names no original subject", d.ID)
	}
	h := nats.Header{}
	for k, vs := range d.Header {
		h[k] = slices.Clone(vs)
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: d.Subject, Header: h, Data: d.Data}, jetstream.WithMsgID(ReplayID(d))); err != nil {
		return fmt.Errorf("replay %d to %s: %w", d.ID, d.Subject, err)
	}
	st, err := js.Stream(ctx, catalog.DeadLetterStream)
	if err != nil {
		return fmt.Errorf("replayed %d, but %s: %w", d.ID, catalog.DeadLetterStream, err)
	}
	if err := st.DeleteMsg(ctx, d.ID); err != nil {
		// Already removed (replayed twice at once) is done too.
		if _, gerr := st.GetMsg(ctx, d.ID); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("replayed %d, but could not remove it: %w", d.ID, err)
		}
	}
	return nil
}
