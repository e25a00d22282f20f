package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Config is one chaos run: one seed.
type Config struct {
	Seed   uint64
	Orders int
	Faults int
	// Workers is how many clients place orders at once; default 16.
	Workers int
	// Lease is order's SAGA_LEASE (default 2s); pauses last over twice as
	// long. Sweep is SAGA_SWEEP, default Lease.
	Lease, Sweep time.Duration
	// QuietWithin bounds the wait for quiescence (default 3m); Stall ends
	// it sooner when nothing has moved for that long (default 45s, over
	// the consumers' 30s AckWait, so a redelivery still counts as moving).
	QuietWithin, Stall time.Duration
	// OrderBudget is how long a client retries one order, or one call of
	// the setup; default 2m.
	OrderBudget time.Duration
	// StartWithin bounds the wait for every pod to be ready; default 2m. A
	// starved machine needs more: the broker answers in seconds, not
	// milliseconds, while every service creates its streams and buckets.
	StartWithin time.Duration
	Bins        Binaries
	// Dir holds the pods' files, stores and logs; "" makes a temp dir,
	// removed after the run unless Keep.
	Dir  string
	Keep bool
	// Progress gets a line per phase; nil for none.
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Second
	}
	if c.Sweep <= 0 {
		c.Sweep = c.Lease
	}
	if c.QuietWithin <= 0 {
		c.QuietWithin = 3 * time.Minute
	}
	if c.Stall <= 0 {
		c.Stall = 45 * time.Second
	}
	if c.OrderBudget <= 0 {
		c.OrderBudget = 2 * time.Minute
	}
	if c.StartWithin <= 0 {
		c.StartWithin = 2 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Result is what one run found.
type Result struct {
	Seed           uint64
	Orders, Faults int
	Planned        []Fault
	Schedule       []FaultRecord
	// ByState counts the recorded orders by final status; Answers what
	// clients were last told, by "HTTP status order-status".
	ByState, Answers map[string]int
	FaultsByKind     map[string]int
	Checks           []Check
	Quiet            bool
	QuietTook        time.Duration
	LoadTook, Took   time.Duration
	// Notes are events worth knowing that are not violations, such as a
	// pod that exited on its own.
	Notes []string
	// Evidence holds the records of the first offender of each broken
	// invariant, by order or product id.
	Evidence map[string]string
	// Consumers is where each durable stood when the checks read the
	// stores, for evidence of an event that was never handled.
	Consumers map[string]string
	// Dir is where the pods' logs are, when kept.
	Dir string
	// Spread counts, per replicated Service port (e.g. chaos-product:9090),
	// the connections its proxy sent to each pod: how callers spread over
	// the replicas.
	Spread map[string]map[string]int64
}

// Failing lists the invariants with violations, less those in pending.
func (r *Result) Failing(pending []string) []string {
	var out []string
	for _, c := range r.Checks {
		if len(c.Violations) > 0 && !contains(pending, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Run starts the platform, drives the load under the seed's faults, waits
// for quiescence and checks every invariant. An error means the run could
// not be made (the platform did not start, say), not that an invariant
// broke: those are in the Result.
func Run(ctx context.Context, cfg Config) (_ *Result, err error) {
	cfg.defaults()
	if cfg.Bins.Switchboard == "" || cfg.Bins.NATSServer == "" {
		return nil, errNoBinaries
	}
	began := time.Now()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	pl := newPlan(rng, cfg.Orders)
	faults := schedule(rng, cfg.Faults, cfg.Orders, cfg.Lease)
	res := &Result{Seed: cfg.Seed, Orders: cfg.Orders, Faults: cfg.Faults, Planned: faults,
		ByState: map[string]int{}, Answers: map[string]int{}, FaultsByKind: map[string]int{}}
	say := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "seed %d: %s\n", cfg.Seed, fmt.Sprintf(format, args...))
	}

	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", fmt.Sprintf("switchboard-chaos-%d-", cfg.Seed)); err != nil {
			return nil, err
		}
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	if cfg.Keep {
		res.Dir = dir
	}

	r, err := renderPlatform()
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	mport, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	mail, err := newMailbox(mport)
	if err != nil {
		return nil, err
	}
	defer mail.Close()
	c, err := layout(dir, r, cfg.Bins, harnessEnv(cfg, mail.Addr()))
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	defer c.close()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, c.logTails(dir))
		}
	}()
	if err := c.start(ctx, cfg.StartWithin); err != nil {
		return nil, err
	}
	say("platform up: %d pods, %d proxies, in %s", len(c.pods), len(c.proxies), time.Since(began).Round(time.Millisecond))

	natsAddr, err := c.serviceAddr(brokerService, render.ClientPort)
	if err != nil {
		return nil, err
	}
	st, err := connectStores("nats://"+natsAddr, c.brokerEnv[catalog.EnvNATSUser], c.brokerEnv[catalog.EnvNATSPassword])
	if err != nil {
		return nil, fmt.Errorf("harness broker connection: %w", err)
	}
	defer st.Close()
	terms, err := watchTerminations(st.nc)
	if err != nil {
		return nil, fmt.Errorf("harness advisories: %w", err)
	}
	defer terms.stop()
	gw, err := c.serviceAddr(catalog.Gateway, 80)
	if err != nil {
		return nil, err
	}
	a := newAPI("http://"+gw, cfg.Workers*2)
	admin := render.AdminFromSecret(r.secrets[render.AdminSecretName(r.pf)])
	customers, err := setup(ctx, a, admin.Email, admin.Password, &pl, cfg.Workers, cfg.OrderBudget)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	say("setup: %d scarce products, %d customers", len(pl.Products), len(customers))

	watchCtx, stopWatch := context.WithCancel(ctx)
	sw := &stockWatch{initial: map[string]int64{}}
	for _, p := range pl.Products {
		sw.initial[p.ID] = p.Initial
	}
	var watching sync.WaitGroup
	watching.Add(1)
	go func() { defer watching.Done(); sw.watch(watchCtx, st) }()
	defer func() { stopWatch(); watching.Wait() }()

	ld := &load{api: a, plan: pl, customers: customers, workers: cfg.Workers, budget: cfg.OrderBudget}
	loadStart := time.Now()
	inj := &injector{c: c, start: loadStart, busy: map[*pod]bool{}}
	ld.hold = func(ctx context.Context, index int) { inj.holdUntilFired(ctx, faults, index) }
	injCtx, stopInj := context.WithCancel(ctx)
	injDone := make(chan struct{})
	go func() {
		defer close(injDone)
		inj.run(injCtx, faults, func() int { return int(ld.issued.Load()) })
	}()
	answers := ld.run(ctx)
	res.LoadTook = time.Since(loadStart)
	stopInj()
	<-injDone
	res.Schedule = inj.wait()
	for _, f := range res.Schedule {
		res.FaultsByKind[f.Kind]++
	}
	res.Notes = append(res.Notes, c.heal()...)
	say("load: %d orders in %s (%.0f/s), %d faults", len(answers), res.LoadTook.Round(time.Millisecond),
		float64(len(answers))/res.LoadTook.Seconds(), len(res.Schedule))

	q, took, ok := waitQuiet(ctx, st, pl.Products, cfg.QuietWithin, cfg.Stall, say)
	res.Quiet, res.QuietTook = ok, took
	say("quiescence: %v after %s", ok, took.Round(time.Millisecond))
	if q.snap == nil {
		return nil, fmt.Errorf("reading the stores: %w", q.readError)
	}
	stopWatch()
	watching.Wait()
	revs, bad := sw.result()

	for _, o := range q.snap.Orders {
		res.ByState[o.Status]++
	}
	for _, an := range answers {
		res.Answers[answerKind(an)]++
	}
	res.Checks = check(facts{snap: q.snap, plan: pl, customers: customers, answers: answers, mails: mail.Sent(),
		watchRevs: revs, watchBad: bad, q: q, quietOK: ok, quietTook: took})
	res.Notes = append(res.Notes, terms.notes()...)
	res.Evidence, res.Consumers = map[string]string{}, map[string]string{}
	for d, l := range q.snap.Consumers {
		res.Consumers[d] = l.String()
	}
	if len(res.Failing(nil)) > 0 {
		evs, err := st.events(ctx)
		if err != nil {
			res.Notes = append(res.Notes, "events for the evidence: "+err.Error())
		}
		for _, ch := range res.Checks {
			if len(ch.Offenders) > 0 {
				res.Evidence[ch.Offenders[0]] = evidence(q.snap, mail.Sent(), evs, ch.Offenders[0])
			}
		}
	}
	res.Spread = map[string]map[string]int64{}
	for _, px := range c.proxies {
		res.Spread[px.name] = px.Spread()
	}
	res.Took = time.Since(began)
	return res, nil
}

// harnessEnv is what the harness sets on top of the rendered env: a short
// saga lease and sweep so pauses outlast it, a cheap bcrypt for sign-ups,
// no demo catalog, a rate limit that does not take every customer (all on
// 127.0.0.1) for one caller, and the mailbox as the e-mail relay.
func harnessEnv(cfg Config, smtpAddr string) map[string]map[string]string {
	return map[string]map[string]string{
		"order":        {"SAGA_LEASE": cfg.Lease.String(), "SAGA_SWEEP": cfg.Sweep.String()},
		"user":         {"BCRYPT_COST": "4"},
		"product":      {"SEED_DEMO": "false"},
		"notification": {"SMTP_ADDR": smtpAddr, "SMTP_FROM": "chaos@switchboard.test"},
		catalog.Gateway: {
			"RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
		},
	}
}

func answerKind(a answer) string {
	switch {
	case a.Abandoned:
		return "abandoned"
	case a.Status == 0:
		return "no answer"
	case a.OrderStatus != "":
		return fmt.Sprintf("%d %s", a.Status, a.OrderStatus)
	case a.Code != "":
		return fmt.Sprintf("%d %s", a.Status, a.Code)
	}
	return fmt.Sprintf("%d", a.Status)
}

// start starts the broker, waits for it, then every service, and waits
// until every pod is ready.
func (c *cluster) start(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, group := range [][]*pod{c.podsOf(brokerService), c.servicePods()} {
		for _, p := range group {
			if err := p.Start(); err != nil {
				return err
			}
		}
		for _, p := range group {
			for !p.Ready() {
				if dead, how := p.Exited(); dead {
					return fmt.Errorf("%s exited before it was ready: %s", p.name, how)
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return fmt.Errorf("%s not ready after %s", p.name, within)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

func (c *cluster) servicePods() []*pod {
	var out []*pod
	for _, p := range c.pods {
		if p.service != brokerService {
			out = append(out, p)
		}
	}
	return out
}

// heal restarts any pod that exited on its own during the run (a fault's
// restart failing, a crash), so quiescence has every replica, and says so.
func (c *cluster) heal() []string {
	var notes []string
	for _, p := range c.pods {
		if dead, how := p.Exited(); dead {
			notes = append(notes, fmt.Sprintf("%s had exited on its own (%s); restarted", p.name, how))
			if err := p.Start(); err != nil {
				notes = append(notes, fmt.Sprintf("%s: %v", p.name, err))
			}
		}
	}
	return notes
}

// logTails is the end of every pod's log, for an error report.
func (c *cluster) logTails(dir string) string {
	var b strings.Builder
	for _, p := range c.pods {
		raw, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		fmt.Fprintf(&b, "\n--- %s (%s)\n%s", p.name, filepath.Base(p.logPath), strings.Join(lines, "\n"))
	}
	if b.Len() == 0 {
		return ""
	}
	return "\nlogs under " + dir + ":" + b.String()
}

var errNoBinaries = errors.New("chaos: Config.Bins is empty: build them with Build")
