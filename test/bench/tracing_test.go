package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/local"
)

// BenchmarkOrdersTracing is BenchmarkOrders on a platform of its own per
// sampling setting, so the cost of tracing shows: every trace recorded
// (the default), one in a hundred (parentbased_traceidratio 0.01, what a
// busy cluster would run), and none (always_off: spans are still started
// and the context still propagated, but nothing is recorded). No collector
// is set: recorded spans go to each service's in-memory buffer, which an
// OTLP exporter's batcher would read from the same processor chain.
//
// Besides orders/s it reports the process's CPU time per order: every
// service runs in this process, so that is what an order costs, a figure
// the load of other processes on the machine moves far less than orders/s.
func BenchmarkOrdersTracing(b *testing.B) {
	if client == nil {
		// The gateway's port is plain HTTP; start() may never have run.
		client = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	}
	type variant struct {
		name     string
		env      map[string]string
		p        *local.Platform
		tokens   []string
		products []string
	}
	variants := []*variant{
		{name: "sampled=100%", env: map[string]string{catalog.EnvTracesSampler: "parentbased_always_on"}},
		{name: "sampled=1%", env: map[string]string{catalog.EnvTracesSampler: "parentbased_traceidratio", catalog.EnvTracesSamplerArg: "0.01"}},
		{name: "sampled=off", env: map[string]string{catalog.EnvTracesSampler: "always_off"}},
	}
	for _, v := range variants {
		env := map[string]string{"RATE_LIMIT_RPS": "1000000", "BCRYPT_COST": "4"}
		for k, val := range v.env {
			env[k] = val
		}
		p, err := local.Start(context.Background(), local.Options{Addr: "127.0.0.1:0", Workloads: []catalog.Workload{catalog.Commerce}, Env: env})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		v.p = p
		v.tokens, v.products = orderFixtures(b, p, 32, 16)
	}
	// The settings take turns, round after round, so that a machine whose
	// load drifts weighs on each alike: compare the medians of the rounds.
	for round := range tracingRounds {
		for _, v := range variants {
			b.Run(fmt.Sprintf("%s/round=%d", v.name, round+1), func(b *testing.B) {
				run := kit.NewID()
				cpu0 := processCPU()
				lat, rate := runConcurrent(b, len(v.tokens), func(client int, i int64) error {
					body, _ := json.Marshal(map[string]any{
						"items":         []map[string]any{{"productId": v.products[i%int64(len(v.products))], "quantity": 1}},
						"paymentMethod": "card", "shippingAddress": "1 Bench St",
					})
					st, err := call("POST", v.p.GatewayURL+"/api/order/orders", v.tokens[client], body, kit.HeaderIdempotencyKey, fmt.Sprintf("%s-%d", run, i))
					if err == nil && st != 201 {
						err = fmt.Errorf("order status %d", st)
					}
					return err
				})
				// The whole platform runs in this process: its CPU time per
				// order is the cost of an order, which the neighbours' load
				// on the machine hardly moves, unlike orders/s.
				b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/order")
				report(b, lat, rate, "orders/s")
			})
		}
	}
}

// tracingRounds is how many turns each sampling setting of
// BenchmarkOrdersTracing takes.
const tracingRounds = 5

// orderFixtures makes clients buyers and nProducts products with stock to
// spare on p.
func orderFixtures(b *testing.B, p *local.Platform, clients, nProducts int) (tokens, products []string) {
	b.Helper()
	tokens = make([]string, clients)
	for i := range clients {
		tokens[i], _ = userToken(b, p, fmt.Sprintf("buyer%d@example.com", i))
	}
	return tokens, createProducts(b, p, nProducts)
}
