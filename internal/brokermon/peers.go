package brokermon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// removeSubject is nats-server's JetStream API for removing a server from
// the meta group; only the system account may call it.
const removeSubject = "$JS.API.SERVER.REMOVE"

// Departed names the servers a scale-down took away that the JetStream
// meta group still counts: members named <statefulSet>-<ordinal> with an
// ordinal at or above replicas that the meta leader sees offline. Until
// they are removed they count in the quorum, so the group that is left
// tolerates one failure fewer than its size says.
//
// Only the leader knows which members are offline; without its view
// Departed returns nil, as there would be no leader to remove them anyway.
// A member still online (a pod still terminating) is left for a later look.
func Departed(servers []*Server, statefulSet string, replicas int32) []string {
	for _, s := range servers {
		if s == nil || s.JetStream.Meta == nil || s.JetStream.Meta.Leader != s.Name {
			continue
		}
		var gone []string
		for _, p := range s.JetStream.Meta.Replicas {
			if !p.Offline {
				continue
			}
			if n, ok := ordinal(p.Name, statefulSet); ok && n >= int(replicas) {
				gone = append(gone, p.Name)
			}
		}
		return gone
	}
	return nil
}

// ordinal returns n for a server named <statefulSet>-<n>.
func ordinal(name, statefulSet string) (int, bool) {
	rest, ok := strings.CutPrefix(name, statefulSet+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// PeerRemover removes servers from a broker's JetStream meta group, logged
// in as the broker's system user.
type PeerRemover struct {
	// Dialer, when set, opens the connections (tests reach embedded
	// servers by the names the operator uses in a cluster).
	Dialer nats.CustomDialer
}

// Remove asks the meta leader to remove each named server, in order, and
// stops at the first refusal.
func (r *PeerRemover) Remove(ctx context.Context, url, user, password string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	opts := []nats.Option{nats.UserInfo(user, password), nats.Name("switchboard-operator"), nats.NoReconnect()}
	if r.Dialer != nil {
		opts = append(opts, nats.SetCustomDialer(r.Dialer))
	}
	if d, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(d)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connecting to the broker as its system user: %w", err)
	}
	defer nc.Close()
	for _, name := range names {
		if err := removePeer(ctx, nc, name); err != nil {
			return fmt.Errorf("removing %s from the JetStream meta group: %w", name, err)
		}
	}
	return nil
}

// removeResponse is nats-server's JSApiMetaServerRemoveResponse.
type removeResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
	Success bool `json:"success"`
}

func removePeer(ctx context.Context, nc *nats.Conn, name string) error {
	req, err := json.Marshal(struct {
		Server string `json:"peer"`
	}{name})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, removeSubject, req)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no meta leader answered (%w): the group needs a quorum to remove a member", err)
		}
		return err
	}
	var resp removeResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("decoding the meta leader's answer: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("the meta leader refused: %s (%d)", resp.Error.Description, resp.Error.Code)
	}
	if !resp.Success {
		return errors.New("the meta leader answered without success")
	}
	return nil
}
