package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fault kinds.
const (
	// FaultKill is SIGKILL of an order, product or payment replica, and a
	// restart after a short delay.
	FaultKill = "kill"
	// FaultPause is SIGSTOP of such a replica for longer than the saga
	// lease, then SIGCONT.
	FaultPause = "pause"
	// FaultBroker is SIGKILL of the broker and a restart on the same store.
	FaultBroker = "broker-restart"
)

// FaultKinds lists the kinds in report order.
var FaultKinds = []string{FaultKill, FaultPause, FaultBroker}

// faultTargets are the services whose replicas kills and pauses hit.
var faultTargets = []string{"order", "product", "payment"}

// Fault is one planned fault: at a point of the load's progress (the
// number of orders issued), a kind, a service, and for how long.
type Fault struct {
	AfterOrders int
	Kind        string
	Service     string
	Replica     int           // the preferred replica; another if it is busy
	Down        time.Duration // kill: time before the restart; pause: time stopped
}

// FaultRecord is a fault as it happened.
type FaultRecord struct {
	Fault
	At     time.Duration // since the load started
	Target string        // the pod hit
	Note   string
}

// schedule draws count faults from the seed, spread over the middle 90% of
// the load. Every kind happens at least once when count allows.
func schedule(rng *rand.Rand, count, orders int, lease time.Duration) []Fault {
	kinds := make([]string, 0, count)
	for i := range count {
		if i < len(FaultKinds) {
			kinds = append(kinds, FaultKinds[i])
			continue
		}
		switch n := rng.IntN(100); {
		case n < 55:
			kinds = append(kinds, FaultKill)
		case n < 80:
			kinds = append(kinds, FaultPause)
		default:
			kinds = append(kinds, FaultBroker)
		}
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	at := make([]int, count)
	lo, span := orders/20, max(1, orders*9/10)
	for i := range at {
		at[i] = lo + rng.IntN(span)
	}
	slices.Sort(at)
	out := make([]Fault, count)
	for i, k := range kinds {
		f := Fault{AfterOrders: at[i], Kind: k}
		switch k {
		case FaultKill:
			f.Service = faultTargets[rng.IntN(len(faultTargets))]
			f.Replica = rng.IntN(2)
			f.Down = time.Duration(200+rng.IntN(1800)) * time.Millisecond
		case FaultPause:
			f.Service = faultTargets[rng.IntN(len(faultTargets))]
			f.Replica = rng.IntN(2)
			// Longer than the lease, so another replica's sweep takes the
			// paused one's sagas while it still holds them in memory.
			f.Down = 2*lease + time.Duration(rng.IntN(int(lease/time.Millisecond)))*time.Millisecond
		case FaultBroker:
			f.Service = brokerService
			f.Down = time.Duration(100+rng.IntN(900)) * time.Millisecond
		}
		out[i] = f
	}
	return out
}

// injector fires the schedule as the load progresses.
type injector struct {
	c     *cluster
	start time.Time

	mu      sync.Mutex
	busy    map[*pod]bool
	records []FaultRecord
	wg      sync.WaitGroup
	fired   atomic.Int64 // faults claimed and started, in schedule order
}

// run fires each fault once progress() reaches its point; it returns when
// every fault has fired (not finished: wait for that).
func (in *injector) run(ctx context.Context, faults []Fault, progress func() int) {
	for _, f := range faults {
		for progress() < f.AfterOrders {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		p := in.claim(ctx, f)
		if p == nil {
			return
		}
		in.fired.Add(1)
		rec := FaultRecord{Fault: f, At: time.Since(in.start), Target: p.name}
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			rec.Note = in.inject(f, p)
			in.release(p)
			in.mu.Lock()
			in.records = append(in.records, rec)
			in.mu.Unlock()
		}()
	}
}

// holdUntilFired blocks the load before it issues order index while a
// fault planned before that point has not fired yet (it waits for a pod
// another fault is busy with), so every fault happens during the load, at
// its point, however the load and the faults race.
func (in *injector) holdUntilFired(ctx context.Context, faults []Fault, index int) {
	for ctx.Err() == nil {
		n := int(in.fired.Load())
		if n >= len(faults) || faults[n].AfterOrders >= index {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// claim picks the pod a fault hits: the preferred replica, else another
// of the service that no fault is busy with; it waits while all are busy.
func (in *injector) claim(ctx context.Context, f Fault) *pod {
	pods := in.c.podsOf(f.Service)
	for {
		in.mu.Lock()
		for i := range pods {
			p := pods[(f.Replica+i)%len(pods)]
			if !in.busy[p] {
				in.busy[p] = true
				in.mu.Unlock()
				return p
			}
		}
		in.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (in *injector) release(p *pod) {
	in.mu.Lock()
	delete(in.busy, p)
	in.mu.Unlock()
}

// inject applies one fault to p and returns a note on how it went.
func (in *injector) inject(f Fault, p *pod) string {
	switch f.Kind {
	case FaultKill, FaultBroker:
		p.Kill()
		time.Sleep(f.Down)
		if err := p.Start(); err != nil {
			return "restart failed: " + err.Error()
		}
		return fmt.Sprintf("down %s", f.Down.Round(time.Millisecond))
	case FaultPause:
		gen, err := p.Pause()
		if err != nil {
			return "not paused: " + err.Error()
		}
		time.Sleep(f.Down)
		p.Resume(gen)
		return fmt.Sprintf("stopped %s", f.Down.Round(time.Millisecond))
	}
	return "unknown kind"
}

// wait returns once every fired fault is over, with the records in firing
// order.
func (in *injector) wait() []FaultRecord {
	in.wg.Wait()
	in.mu.Lock()
	defer in.mu.Unlock()
	out := slices.Clone(in.records)
	slices.SortFunc(out, func(a, b FaultRecord) int { return int(a.At - b.At) })
	return out
}
