// Package registry lists the services built into the switchboard binary.
// Adding a service is one line in definitions; `switchboard serve` and
// `switchboard dev` pick it up, and a workload becomes runnable once all of
// its catalog services are here.
package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-dev/switchboard/services/account"
	"github.com/switchboard-dev/switchboard/services/analytics"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/content"
	"github.com/switchboard-dev/switchboard/services/gateway"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/notification"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/payment"
	"github.com/switchboard-dev/switchboard/services/playback"
	"github.com/switchboard-dev/switchboard/services/product"
	"github.com/switchboard-dev/switchboard/services/recommendation"
	"github.com/switchboard-dev/switchboard/services/user"
)

var definitions = []kit.Definition{
	gateway.Definition,
	user.Definition,
	product.Definition,
	order.Definition,
	payment.Definition,
	notification.Definition,
	account.Definition,
	content.Definition,
	playback.Definition,
	analytics.Definition,
	recommendation.Definition,
}

// Lookup returns the named service's definition.
func Lookup(name string) (kit.Definition, bool) {
	i := slices.IndexFunc(definitions, func(d kit.Definition) bool { return d.Name == name })
	if i < 0 {
		return kit.Definition{}, false
	}
	return definitions[i], true
}

// Names lists the registered services.
func Names() []string {
	out := make([]string, len(definitions))
	for i, d := range definitions {
		out[i] = d.Name
	}
	return out
}

// Missing lists the services of workload w that are not built in.
func Missing(w catalog.Workload) []string {
	var out []string
	for _, s := range catalog.ForWorkloads(w) {
		if _, ok := Lookup(s.Name); !ok {
			out = append(out, s.Name)
		}
	}
	return out
}

// Available lists the workloads whose services are all built in.
func Available() []catalog.Workload {
	var out []catalog.Workload
	for _, w := range catalog.Workloads {
		if len(Missing(w)) == 0 {
			out = append(out, w)
		}
	}
	return out
}

// Resolve turns workload names into the definitions to run, in catalog
// order, or explains which workload cannot run and why.
func Resolve(workloads []catalog.Workload) ([]kit.Definition, error) {
	if len(workloads) == 0 {
		return nil, fmt.Errorf("no workload selected; available: %s", join(Available()))
	}
	for _, w := range workloads {
		if !catalog.ValidWorkload(w) {
			return nil, fmt.Errorf("unknown workload %q; known: %s", w, join(catalog.Workloads))
		}
		if m := Missing(w); len(m) > 0 {
			return nil, fmt.Errorf("workload %q is not built into this binary yet (missing services: %s); available: %s",
				w, strings.Join(m, ", "), join(Available()))
		}
	}
	var out []kit.Definition
	for _, s := range catalog.ForWorkloads(workloads...) {
		d, _ := Lookup(s.Name)
		out = append(out, d)
	}
	return out, nil
}

func join(ws []catalog.Workload) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = string(w)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
