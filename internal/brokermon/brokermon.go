// Package brokermon reads what the operator needs from a broker server's
// HTTP monitor (nats-server's /varz and /jsz): the server's name, how much
// of its JetStream store is used, and what it knows of the JetStream meta
// cluster (leader, peers current).
//
// It decodes into minimal structs rather than nats-server's own types: the
// broker may run another nats-server version (spec.broker.image) than the
// one Switchboard embeds, and the operator should not link the server.
// TestFieldsMatchTheServersTypes keeps the JSON names honest.
package brokermon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultTimeout bounds one Server call (both requests).
const DefaultTimeout = 3 * time.Second

// maxBody caps a monitor response: /jsz without account details is a few KiB.
const maxBody = 1 << 20

// Varz holds the fields of the server's /varz the operator reads.
type Varz struct {
	Name string `json:"server_name"`
}

// JSZ holds the fields of the server's /jsz (nats-server's JSInfo) the
// operator reads.
type JSZ struct {
	Disabled bool            `json:"disabled"`
	Config   JetStreamConfig `json:"config"`
	// Memory and Store are the bytes JetStream uses, in memory and on disk.
	Memory uint64       `json:"memory"`
	Store  uint64       `json:"storage"`
	Meta   *MetaCluster `json:"meta_cluster"`
}

// JetStreamConfig holds the server's JetStream limits.
type JetStreamConfig struct {
	MaxMemory int64 `json:"max_memory"`
	MaxStore  int64 `json:"max_storage"`
}

// MetaCluster is the server's view of the JetStream meta group; nil on a
// server that is not clustered.
type MetaCluster struct {
	Name   string `json:"name"`
	Leader string `json:"leader"`
	Size   int    `json:"cluster_size"`
	// Replicas are the peers other than the server answering. Only the
	// leader tracks whether they are current.
	Replicas []Peer `json:"replicas"`
}

// Peer is a member of the meta group as another member sees it.
type Peer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// Server is one broker server's monitor, as read at one moment.
type Server struct {
	Name      string
	JetStream JSZ
}

// StorageUsed returns the bytes JetStream uses and its limit, in the store
// the server is configured for: file, or memory when it has no file store.
func (s *Server) StorageUsed() (used uint64, limit int64) {
	if s.JetStream.Config.MaxStore > 0 {
		return s.JetStream.Store, s.JetStream.Config.MaxStore
	}
	return s.JetStream.Memory, s.JetStream.Config.MaxMemory
}

// Client reads broker monitors over HTTP.
type Client struct {
	// HTTP sends the requests; nil means a client that follows no
	// redirect. Each call is bounded by DefaultTimeout on top of its ctx.
	HTTP *http.Client
}

// Server reads /varz and /jsz of the monitor at baseURL (http://host:8222).
func (c *Client) Server(ctx context.Context, baseURL string) (*Server, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	var v Varz
	if err := c.get(ctx, baseURL, "/varz", &v); err != nil {
		return nil, err
	}
	var j JSZ
	if err := c.get(ctx, baseURL, "/jsz", &j); err != nil {
		return nil, err
	}
	return &Server{Name: v.Name, JetStream: j}, nil
}

func (c *Client) get(ctx context.Context, baseURL, path string, into any) error {
	url := strings.TrimSuffix(baseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := Decode(io.LimitReader(resp.Body, maxBody), into); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// Decode reads one JSON document of a monitor into v, which must be a
// *Varz or a *JSZ.
func Decode(r io.Reader, v any) error {
	switch v.(type) {
	case *Varz, *JSZ:
	default:
		return fmt.Errorf("brokermon: cannot decode into %T", v)
	}
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("decoding the monitor's answer: %w", err)
	}
	if j, ok := v.(*JSZ); ok && j.Meta != nil && j.Meta.Size < 0 {
		return errors.New("decoding the monitor's answer: negative cluster_size")
	}
	return nil
}

// Cluster is the JetStream meta group as the operator reports it.
type Cluster struct {
	Name   string
	Leader string
	Size   int
	// Current counts the members known to be caught up, the leader
	// included; it is -1 when the leader's view could not be read.
	Current int
	// Behind names the members that are not current, with their lag.
	Behind []string
}

// ClusterOf returns the meta group as the servers that answered see it,
// preferring the leader's view, which alone says which peers are current.
// It returns nil when no server is clustered.
func ClusterOf(servers []*Server) *Cluster {
	var any *Server
	for _, s := range servers {
		if s == nil || s.JetStream.Meta == nil {
			continue
		}
		if any == nil {
			any = s
		}
		m := s.JetStream.Meta
		if m.Leader != "" && m.Leader == s.Name {
			c := &Cluster{Name: m.Name, Leader: m.Leader, Size: m.Size, Current: 1}
			for _, p := range m.Replicas {
				if p.Current && !p.Offline {
					c.Current++
					continue
				}
				state := fmt.Sprintf("%d behind", p.Lag)
				if p.Offline {
					state = "offline"
				}
				c.Behind = append(c.Behind, fmt.Sprintf("%s (%s)", p.Name, state))
			}
			return c
		}
	}
	if any == nil {
		return nil
	}
	m := any.JetStream.Meta
	return &Cluster{Name: m.Name, Leader: m.Leader, Size: m.Size, Current: -1}
}
