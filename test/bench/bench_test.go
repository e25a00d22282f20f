// Package bench measures the commerce platform end to end on loopback with
// an embedded NATS: `make bench` runs these. They report latency
// percentiles and throughput through b.ReportMetric; docs/benchmarks.md
// records a run.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/local"
)

var (
	once     sync.Once
	platform *local.Platform
	setupErr error
	// client calls as the gateway does, so "direct" reaches a service's
	// API port over the same mutual TLS (the services admit the gateway's
	// certificate alone); the gateway's own port is plain.
	client *http.Client
)

func TestMain(m *testing.M) {
	code := m.Run()
	if platform != nil {
		_ = platform.Close()
	}
	os.Exit(code)
}

func start(b *testing.B) *local.Platform {
	b.Helper()
	once.Do(func() {
		platform, setupErr = local.Start(context.Background(), local.Options{
			Addr: "127.0.0.1:0",
			// The commerce figures; streaming has its own benchmarks.
			Workloads: []catalog.Workload{catalog.Commerce},
			// The rate limit guards real clients; a benchmark is one client
			// asking for everything it can get.
			Env: map[string]string{"RATE_LIMIT_RPS": "1000000", "BCRYPT_COST": "4"},
		})
		if setupErr != nil {
			return
		}
		var ident *kit.Identity
		if ident, setupErr = platform.Identity(catalog.Gateway); setupErr != nil {
			return
		}
		client = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
			TLSClientConfig: kit.ClientTLSConfig(ident, kit.AuthorizeMemberOf(platform.Base.Sibling(catalog.Gateway)))}}
	})
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	return platform
}

func call(method, url, token string, body []byte, hdr ...string) (int, error) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func userToken(b *testing.B, p *local.Platform, email string) (string, string) {
	b.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "name": "Bench", "password": "bench-password"})
	if st, err := call("POST", p.GatewayURL+"/api/user/users", "", body); err != nil || (st != 201 && st != 409) {
		b.Fatalf("register: %d %v", st, err)
	}
	body, _ = json.Marshal(map[string]string{"email": email, "password": "bench-password"})
	req, _ := http.NewRequest("POST", p.GatewayURL+"/api/user/login", bytes.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		b.Fatal(err)
	}
	c, err := p.TokenKeys.Verify(context.Background(), tok.Token)
	if err != nil {
		b.Fatal(err)
	}
	return tok.Token, c.Subject
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*q))]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// BenchmarkProductGet measures GET /products/{id} directly and through the
// gateway, one request at a time and interleaved, so both paths see the
// same machine load; the ratio is the gateway's share of p50.
func BenchmarkProductGet(b *testing.B) {
	p := start(b)
	token, _ := userToken(b, p, "reader@example.com")
	direct, gw := p.URLs["product"]+"/products/keyboard", p.GatewayURL+"/api/product/products/keyboard"
	for _, u := range []string{direct, gw} {
		if st, err := call("GET", u, token, nil); err != nil || st != 200 {
			b.Fatalf("%s: %d %v", u, st, err)
		}
	}
	dl, gl := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := call("GET", direct, "", nil); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := call("GET", gw, token, nil); err != nil {
			b.Fatal(err)
		}
		dl, gl = append(dl, t1.Sub(t0)), append(gl, time.Since(t1))
	}
	b.StopTimer()
	d50, g50 := percentile(dl, .5), percentile(gl, .5)
	b.ReportMetric(us(d50), "direct-p50-µs")
	b.ReportMetric(us(percentile(dl, .99)), "direct-p99-µs")
	b.ReportMetric(us(g50), "gateway-p50-µs")
	b.ReportMetric(us(percentile(gl, .99)), "gateway-p99-µs")
	b.ReportMetric(float64(g50)/float64(d50), "gateway/direct-p50")
}

// BenchmarkProductGetThroughput measures requests per second at 16
// concurrent clients, directly and through the gateway.
func BenchmarkProductGetThroughput(b *testing.B) {
	p := start(b)
	token, _ := userToken(b, p, "reader@example.com")
	for _, tc := range []struct{ name, url, token string }{
		{"direct", p.URLs["product"] + "/products/keyboard", ""},
		{"gateway", p.GatewayURL + "/api/product/products/keyboard", token},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lat, rate := runConcurrent(b, 16, func(int, int64) error {
				st, err := call("GET", tc.url, tc.token, nil)
				if err == nil && st != 200 {
					err = fmt.Errorf("status %d", st)
				}
				return err
			})
			report(b, lat, rate, "req/s")
		})
	}
}

// BenchmarkOrders places orders end to end through the gateway at 32
// concurrent clients, each its own user; every one must be confirmed.
func BenchmarkOrders(b *testing.B) {
	p := start(b)
	const clients, nProducts = 32, 16
	tokens, products := orderFixtures(b, p, clients, nProducts)
	run := kit.NewID()
	lat, rate := runConcurrent(b, clients, func(client int, i int64) error {
		body, _ := json.Marshal(map[string]any{
			"items":         []map[string]any{{"productId": products[i%nProducts], "quantity": 1}},
			"paymentMethod": "card", "shippingAddress": "1 Bench St",
		})
		st, err := call("POST", p.GatewayURL+"/api/order/orders", tokens[client], body, kit.HeaderIdempotencyKey, fmt.Sprintf("%s-%d", run, i))
		if err == nil && st != 201 {
			err = fmt.Errorf("order status %d", st)
		}
		return err
	})
	report(b, lat, rate, "orders/s")
}

// createProducts creates n products through the gateway as staff, each
// with stock no benchmark exhausts, and returns their ids.
func createProducts(b *testing.B, p *local.Platform, n int) []string {
	b.Helper()
	products := make([]string, n)
	for i := range n {
		body, _ := json.Marshal(map[string]any{"name": "Bench item", "category": "bench", "price": 1999, "stock": 1_000_000_000})
		req, _ := http.NewRequest("POST", p.GatewayURL+"/api/product/products", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+kittest.Issue(b, p.Signer, "bench-staff", kit.RoleAdmin))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var pr struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&pr)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || pr.ID == "" {
			b.Fatalf("create product: status %d", resp.StatusCode)
		}
		products[i] = pr.ID
	}
	return products
}

// runConcurrent runs b.N calls of fn spread over n workers and returns each
// call's latency and the calls per second; it reports the process's CPU
// time per call.
func runConcurrent(b *testing.B, n int, fn func(worker int, i int64) error) ([]time.Duration, float64) {
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for w := range n {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					failed.Store(&err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Client and servers alike: everything runs in this process.
	reportCPU(b, processCPU()-cpu0)
	b.StopTimer()
	if e := failed.Load(); e != nil {
		b.Fatal(*e)
	}
	return lat, float64(b.N) / elapsed.Seconds()
}

// report reports the latency percentiles and the rate, in unit.
func report(b *testing.B, lat []time.Duration, rate float64, unit string) {
	b.ReportMetric(us(percentile(lat, .5)), "p50-µs")
	b.ReportMetric(us(percentile(lat, .99)), "p99-µs")
	b.ReportMetric(rate, unit)
}
