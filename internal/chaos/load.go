package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/services/order"
)

// product is one of the scarce products the load orders.
type product struct {
	ID    string
	Name  string
	Price int64
	// Initial is the stock it was created with.
	Initial int64
}

// job is one order a customer places: the same body and Idempotency-Key
// on every retry.
type job struct {
	Index    int
	Customer int
	Key      string
	Items    []line
	Method   string
}

type line struct {
	Product  int // index into the products
	Quantity int64
}

// Payment methods: the simulated processor declines DeclinedMethod
// (services/payment).
const (
	okMethod       = "card"
	declinedMethod = "card_declined"
)

// plan is the whole workload of one seed, drawn before anything runs.
type plan struct {
	Products  []product
	Customers int
	Jobs      []job
}

// stockLadder is how much of its demand each product can meet: some run
// out early, some late, one never, so confirmations and out-of-stock
// cancellations interleave through the whole run, and orders of two lines
// often reserve one and miss the other.
var stockLadder = []float64{0.2, 0.35, 0.5, 0.65, 0.8, 1.2}

// newPlan draws the workload from the seed.
func newPlan(rng *rand.Rand, orders int) plan {
	p := plan{Customers: max(4, orders/10)}
	ladder := append([]float64(nil), stockLadder...)
	rng.Shuffle(len(ladder), func(i, j int) { ladder[i], ladder[j] = ladder[j], ladder[i] })
	for i := range ladder {
		// Prices from 100.00 to 200.00: every order earns points (one per
		// 100.00), and every order stays far below the processor's limit.
		p.Products = append(p.Products, product{Name: fmt.Sprintf("chaos product %d", i), Price: 10000 + 100*rng.Int64N(101)})
	}
	demand := make([]int64, len(p.Products))
	for i := range orders {
		j := job{Index: i, Customer: i % p.Customers, Key: fmt.Sprintf("chaos-%d", i), Method: okMethod}
		if rng.IntN(100) < 8 {
			j.Method = declinedMethod
		}
		n := 1
		if rng.IntN(100) < 35 {
			n = 2
		}
		for _, pi := range rng.Perm(len(p.Products))[:n] {
			q := 1 + rng.Int64N(3)
			j.Items = append(j.Items, line{Product: pi, Quantity: q})
			if j.Method == okMethod {
				demand[pi] += q
			}
		}
		p.Jobs = append(p.Jobs, j)
	}
	for i := range p.Products {
		p.Products[i].Initial = max(1, int64(float64(demand[i])*ladder[i]))
	}
	return p
}

// answer is the last thing the client was told about an order.
type answer struct {
	Status      int    // HTTP status; 0 when no answer came
	OrderStatus string // the order's status in the body, if any
	Code        string // the error code in the body, if any
	Attempts    int
	Abandoned   bool // retried for the whole budget without a final answer
	Err         string
}

// customer is a signed-up, logged-in user.
type customer struct {
	ID, Email, Token string
}

// api calls the platform through the gateway, as a client outside would.
type api struct {
	base string
	hc   *http.Client
}

func newAPI(base string, conns int) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	return &api{base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// call sends one request; a transport error comes back as err.
func (a *api) call(ctx context.Context, method, path, token, idemKey string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	return res.StatusCode, b, nil
}

// retryable: no answer, a 5xx without a final order in it, or a 429.
func retryable(status int, err error, final bool) bool {
	return err != nil || status == http.StatusTooManyRequests || (status >= 500 && !final)
}

// callRetrying retries a call the way a patient client does, with the
// same Idempotency-Key, until it gets an answer it keeps or budget runs out.
func (a *api) callRetrying(ctx context.Context, budget time.Duration, method, path, token, idemKey string, body any, out any) (int, error) {
	deadline := time.Now().Add(budget)
	for attempt := 0; ; attempt++ {
		status, b, err := a.call(ctx, method, path, token, idemKey, body)
		if !retryable(status, err, false) {
			if out != nil && status < 300 {
				if err := json.Unmarshal(b, out); err != nil {
					return status, fmt.Errorf("%s %s: %d %s: %v", method, path, status, b, err)
				}
			}
			if status >= 300 {
				return status, fmt.Errorf("%s %s: %d %s", method, path, status, b)
			}
			return status, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return status, fmt.Errorf("%s %s: no answer within %s: %d %s %v", method, path, budget, status, b, err)
		}
		sleepBackoff(ctx, attempt)
	}
}

func sleepBackoff(ctx context.Context, attempt int) {
	d := min(50*time.Millisecond<<min(attempt, 5), time.Second)
	d += time.Duration(rand.Int64N(int64(d)))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// orderBody is what POST /orders answers: the order, or an error with the
// order next to it.
type orderBody struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  *struct {
		Code string `json:"code"`
	} `json:"error"`
	Order *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"order"`
}

func finalStatus(s string) bool { return s == "confirmed" || s == "cancelled" || s == "refunded" }

// place places one order, retrying a failed POST with the same key like a
// real client: a connection error, a 429 or a 5xx without a final order is
// retried for up to budget; any other answer is kept.
func (a *api) place(ctx context.Context, c customer, j job, products []product, budget time.Duration) answer {
	items := make([]map[string]any, len(j.Items))
	for i, it := range j.Items {
		items[i] = map[string]any{"productId": products[it.Product].ID, "quantity": it.Quantity}
	}
	body := map[string]any{"items": items, "paymentMethod": j.Method, "shippingAddress": fmt.Sprintf("%d Chaos Lane", j.Index)}
	deadline := time.Now().Add(budget)
	var ans answer
	for attempt := 0; ; attempt++ {
		status, b, err := a.call(ctx, http.MethodPost, "/api/order/orders", c.Token, j.Key, body)
		ans = answer{Status: status, Attempts: attempt + 1}
		var ob orderBody
		if err == nil {
			_ = json.Unmarshal(b, &ob)
			ans.OrderStatus = ob.Status
			if ob.Order != nil {
				ans.OrderStatus = ob.Order.Status
			}
			if ob.Error != nil {
				ans.Code = ob.Error.Code
			}
		} else {
			ans.Err = err.Error()
		}
		if !retryable(status, err, finalStatus(ans.OrderStatus)) {
			return ans
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			ans.Abandoned = true
			return ans
		}
		sleepBackoff(ctx, attempt)
	}
}

// load runs the plan's jobs on workers and reports progress for the fault
// schedule.
type load struct {
	api       *api
	plan      plan
	customers []customer
	workers   int
	budget    time.Duration
	// hold, if set, is called before each job is issued and may block.
	hold func(ctx context.Context, index int)

	issued  atomic.Int64 // jobs taken by a worker
	done    atomic.Int64
	mu      sync.Mutex
	answers []answer
}

// run places every job and returns the answers by job index.
func (l *load) run(ctx context.Context) []answer {
	l.answers = make([]answer, len(l.plan.Jobs))
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				a := l.api.place(ctx, l.customers[j.Customer], j, l.plan.Products, l.budget)
				l.mu.Lock()
				l.answers[j.Index] = a
				l.mu.Unlock()
				l.done.Add(1)
			}
		}()
	}
	for _, j := range l.plan.Jobs {
		if l.hold != nil {
			l.hold(ctx, j.Index)
		}
		select {
		case jobs <- j:
			l.issued.Add(1)
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	return l.answers
}

// setup logs in the first admin, creates the scarce products and signs up
// and logs in every customer, before any fault, retrying each call for up
// to budget.
func setup(ctx context.Context, a *api, adminEmail, adminPassword string, p *plan, workers int, budget time.Duration) ([]customer, error) {
	var tok struct{ Token string }
	if _, err := a.callRetrying(ctx, budget, http.MethodPost, "/api/user/login", "", "",
		map[string]string{"email": adminEmail, "password": adminPassword}, &tok); err != nil {
		return nil, fmt.Errorf("admin login: %w", err)
	}
	for i := range p.Products {
		pr := &p.Products[i]
		var created struct{ ID string }
		if _, err := a.callRetrying(ctx, budget, http.MethodPost, "/api/product/products", tok.Token, "",
			map[string]any{"name": pr.Name, "category": "chaos", "price": pr.Price, "stock": pr.Initial}, &created); err != nil {
			return nil, fmt.Errorf("creating %s: %w", pr.Name, err)
		}
		pr.ID = created.ID
	}
	customers := make([]customer, p.Customers)
	errs := make([]error, p.Customers)
	idx := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				c := customer{Email: fmt.Sprintf("customer%d@chaos.example", i)}
				const password = "chaos-password"
				var u struct{ ID string }
				if _, err := a.callRetrying(ctx, budget, http.MethodPost, "/api/user/users", "", "",
					map[string]string{"email": c.Email, "name": fmt.Sprintf("Customer %d", i), "password": password}, &u); err != nil {
					errs[i] = err
					continue
				}
				var t struct{ Token string }
				if _, err := a.callRetrying(ctx, budget, http.MethodPost, "/api/user/login", "", "",
					map[string]string{"email": c.Email, "password": password}, &t); err != nil {
					errs[i] = err
					continue
				}
				c.ID, c.Token = u.ID, t.Token
				customers[i] = c
			}
		}()
	}
	for i := range p.Customers {
		idx <- i
	}
	close(idx)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("signing up customers: %w", err)
	}
	return customers, nil
}

// orderID is the id order gives the order a job places.
func orderID(c customer, j job) string { return order.IDFor(c.ID, j.Key) }
