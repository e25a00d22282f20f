// Package chaos runs one short seed of the chaos run (make chaos) in make
// test: the commerce platform as separate processes, a few orders for
// scarce stock, one fault of each kind, and every invariant checked once
// the platform is quiet.
package chaos

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/internal/chaos"
)

// PendingInvariants are the invariants today's saga is known to break under
// faults: issue 12's defects (a saga resumed after its charge cancels
// without a refund and cannot release what it committed, so the lines it
// still held stay reserved; leases that expire while a drive goes on;
// events published before the state they announce; notifications sent
// before they are recorded). docs/chaos.md ("Today's saga under the run")
// has a seed on main that broke most of them, nothing-reserved among
// them. The short seed prints their violations but does not fail on them;
// every other invariant must hold. The saga rebuild (issue 12 §1–4) empties this list,
// and make chaos, which has no pending list, then passes too.
var PendingInvariants = []string{
	chaos.InvQuiescent,
	chaos.InvFinal,
	chaos.InvCancelledUnpaid,
	chaos.InvNoReserved,
	chaos.InvSold,
	chaos.InvReservations,
	chaos.InvPoints,
	chaos.InvNotified,
	chaos.InvMailed,
}

// The short seed: few orders, one fault of each kind.
const (
	shortSeed   = 1
	shortOrders = 150
	shortFaults = 3 // the first three faults of a schedule are one of each kind
)

func TestShortChaosSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos seed runs the whole commerce platform as processes; skipped with -short (make chaos runs the long seeds)")
	}
	// On a quiet machine the seed takes about a minute. make test runs it
	// beside other packages' processes on a shared machine, where one
	// start of the platform has taken over two minutes (the broker's read
	// loop stalled for seconds while every service created its streams):
	// the bounds here leave room for that, inside go test's default
	// 10-minute timeout. They decide nothing the test asserts.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	repo, err := chaos.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	bins, err := chaos.Build(ctx, repo, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built switchboard and nats-server in %s", time.Since(began).Round(time.Millisecond))
	res, err := chaos.Run(ctx, chaos.Config{Seed: shortSeed, Orders: shortOrders, Faults: shortFaults, Workers: 4, Bins: bins,
		StartWithin: 5 * time.Minute, OrderBudget: 3 * time.Minute, Progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	res.Print(&report, PendingInvariants)
	t.Log("\n" + report.String())

	// The run must have exercised what it checks.
	if res.ByState["confirmed"] == 0 || res.ByState["cancelled"] == 0 {
		t.Errorf("orders ended %v: the scarce stock should confirm some and cancel others", res.ByState)
	}
	for _, k := range chaos.FaultKinds {
		if res.FaultsByKind[k] == 0 {
			t.Errorf("no %s fault fired: %v", k, res.FaultsByKind)
		}
	}
	for _, c := range res.Checks {
		if c.Checked == 0 && c.NotCheckable == "" {
			t.Errorf("invariant %s checked nothing", c.Name)
		}
	}
	if failing := res.Failing(PendingInvariants); len(failing) > 0 {
		t.Errorf("seed %d broke %v; reproduce with: make chaos SEED=%d ORDERS=%d FAULTS=%d", shortSeed, failing, shortSeed, shortOrders, shortFaults)
	}
	for _, name := range PendingInvariants {
		if !slices.Contains(chaos.Invariants, name) {
			t.Errorf("PendingInvariants names %q, which is no invariant", name)
		}
	}
}

// logWriter puts each progress line of the run in the test's log, with
// its time, so a slow or failing run shows where the time went.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s %s", time.Now().UTC().Format("15:04:05.000"), strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
