package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaderReads is a bucket whose reads its stream's leader answers. The KV
// API's Get is a direct get, which any replica of a replicated bucket may
// answer, a follower that has not yet applied a write already
// acknowledged included: neither nats.go nor the server promise
// read-after-write on direct gets, and NATS's docs send reads that must
// see the last write to the leader, as a message get. A stale read before
// a compare-and-set costs a retry only, but one that decides does harm:
// a commit refused for a reservation just made, a sale missed by a late
// reserve, a notification's own claim taken for another attempt's (the
// cluster run saw that one). Writes, watches and key listings are the
// bucket's own.
type leaderReads struct {
	jetstream.KeyValue
	nc      *nats.Conn
	subject string // $JS.API.STREAM.MSG.GET.KV_<bucket>
	prefix  string // $KV.<bucket>.
}

func readFromLeader(nc *nats.Conn, kv jetstream.KeyValue) jetstream.KeyValue {
	if _, ok := kv.(leaderReads); ok || nc == nil {
		return kv
	}
	b := kv.Bucket()
	return leaderReads{KeyValue: kv, nc: nc, subject: "$JS.API.STREAM.MSG.GET.KV_" + b, prefix: "$KV." + b + "."}
}

// errNoMessageFound is the server's JSNoMessageFoundErr.
const errNoMessageFound = 10037

// readTimeout bounds a read whose context has no deadline, as nats.go's
// own API calls are bounded: a request whose answer is lost (the broker
// restarting) would otherwise wait for ever, and with it a saga holding
// its lease.
const readTimeout = 5 * time.Second

// Get reads the key's last revision from the stream's leader.
func (k leaderReads) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readTimeout)
		defer cancel()
	}
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{k.prefix + key})
	if err != nil {
		return nil, err
	}
	msg, err := k.nc.RequestWithContext(ctx, k.subject, req)
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", k.Bucket(), key, err)
	}
	var resp struct {
		Message *struct {
			Seq     uint64    `json:"seq"`
			Headers []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", k.Bucket(), key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == errNoMessageFound:
		return nil, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("get %s/%s: %s (%d)", k.Bucket(), key, resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return nil, fmt.Errorf("get %s/%s: an answer with no message", k.Bucket(), key)
	}
	m := resp.Message
	e := entry{bucket: k.Bucket(), key: key, value: m.Data, revision: m.Seq, created: m.Time, op: jetstream.KeyValuePut}
	if len(m.Headers) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Headers)
		if err != nil {
			return nil, fmt.Errorf("get %s/%s: headers: %w", k.Bucket(), key, err)
		}
		// As nats.go reads them: a delete or purge marker, or a marker the
		// server left when the key's age ran out.
		switch h.Get("KV-Operation") + "/" + h.Get(jetstream.MarkerReasonHeader) {
		case "DEL/", "/Remove":
			e.op = jetstream.KeyValueDelete
		case "PURGE/", "/MaxAge", "/Purge":
			e.op = jetstream.KeyValuePurge
		}
		if e.op != jetstream.KeyValuePut {
			return e, jetstream.ErrKeyDeleted
		}
	}
	return e, nil
}

// entry is a jetstream.KeyValueEntry read by leaderReads.
type entry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return e.bucket }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return e.revision }
func (e entry) Created() time.Time              { return e.created }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }
