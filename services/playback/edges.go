package playback

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Edge is one CDN edge that serves manifests and segments.
type Edge struct {
	Name   string
	Region string
	URL    string
	// Capacity weighs load: an edge with twice the capacity takes twice
	// the sessions before it looks as busy.
	Capacity int
}

// EnvCDNEdges configures the edges: comma-separated
// name=region=baseURL[=capacity].
const EnvCDNEdges = "CDN_EDGES"

// DefaultEdges is used when CDN_EDGES is unset: two edges in each of the
// demo library's regions, one in APAC.
const DefaultEdges = "edge-eu-1=eu=https://eu-1.cdn.switchboard.dev," +
	"edge-eu-2=eu=https://eu-2.cdn.switchboard.dev," +
	"edge-us-1=us=https://us-1.cdn.switchboard.dev," +
	"edge-us-2=us=https://us-2.cdn.switchboard.dev," +
	"edge-apac-1=apac=https://apac-1.cdn.switchboard.dev"

const defaultCapacity = 1000

// ParseEdges reads a CDN_EDGES value. Every error names the entry at fault.
func ParseEdges(v string) ([]Edge, error) {
	var out []Edge
	seen := map[string]bool{}
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, "=")
		if len(parts) != 3 && len(parts) != 4 {
			return nil, fmt.Errorf("%s: %q: want name=region=url[=capacity]", EnvCDNEdges, entry)
		}
		e := Edge{Name: parts[0], Region: parts[1], URL: strings.TrimSuffix(parts[2], "/"), Capacity: defaultCapacity}
		if !kit.ValidID(e.Name) || !kit.ValidID(e.Region) {
			return nil, fmt.Errorf("%s: %q: name and region must be 1-64 letters, digits, '-' or '_'", EnvCDNEdges, entry)
		}
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s: %q: want an absolute http(s) URL", EnvCDNEdges, entry)
		}
		if len(parts) == 4 {
			n, err := strconv.Atoi(parts[3])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%s: %q: capacity must be a positive integer", EnvCDNEdges, entry)
			}
			e.Capacity = n
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("%s: edge %q is listed twice", EnvCDNEdges, e.Name)
		}
		seen[e.Name] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no edges", EnvCDNEdges)
	}
	return out, nil
}

// candidates are the edges of region, or every edge when none serves it.
func candidates(edges []Edge, region string) []Edge {
	var out []Edge
	for _, e := range edges {
		if e.Region == region {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return edges
	}
	return out
}

// leastLoaded picks the edge with the lowest active/capacity, the first
// listed on a tie. load holds active session counts by edge name.
func leastLoaded(edges []Edge, load map[string]int) Edge {
	best := edges[0]
	for _, e := range edges[1:] {
		// Compare active/capacity without division.
		if load[e.Name]*best.Capacity < load[best.Name]*e.Capacity {
			best = e
		}
	}
	return best
}

// edgeLoad is an edge's record in the sessions bucket.
type edgeLoad struct {
	Active int `json:"active"`
}

func edgeKey(name string) string { return "edge." + name }

func (p *Player) chooseEdge(ctx context.Context, region string) (Edge, error) {
	cands := candidates(p.cdn, region)
	load := map[string]int{}
	for _, e := range cands {
		l, _, err := p.edges.Get(ctx, edgeKey(e.Name))
		if err != nil && !errors.Is(err, kit.ErrNotFound) {
			return Edge{}, err
		}
		load[e.Name] = l.Active
	}
	return leastLoaded(cands, load), nil
}

func (p *Player) addLoad(ctx context.Context, edge string, delta int) {
	if _, err := p.edges.Upsert(ctx, edgeKey(edge), func(l *edgeLoad, _ bool) error {
		l.Active = max(0, l.Active+delta)
		return nil
	}); err != nil {
		// The sweeper's recount repairs it.
		kit.Logger(ctx).Warn("edge load not updated", "edge", edge, "err", err)
	}
}
