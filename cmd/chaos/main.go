// Command chaos runs the commerce platform as separate processes under a
// seeded schedule of faults, and checks that no money or stock was lost
// (issue 12). See internal/chaos.
//
//	chaos -seed 7                  one seed, with the full report
//	chaos -seeds 20 -first 1       seeds 1…20, one summary line each
//
// It exits 1 when any seed breaks an invariant, 2 when a run could not be
// made.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/switchboard-dev/switchboard/internal/chaos"
)

func main() { os.Exit(run()) }

func run() int {
	seed := flag.Uint64("seed", 0, "run this one seed and print its full report (0: run -seeds seeds)")
	seeds := flag.Int("seeds", 20, "how many consecutive seeds to run when -seed is not given")
	first := flag.Uint64("first", 1, "the first of the consecutive seeds")
	orders := flag.Int("orders", 2000, "orders per seed")
	faults := flag.Int("faults", 30, "faults per seed")
	workers := flag.Int("workers", 16, "clients placing orders at once")
	lease := flag.Duration("lease", 2*time.Second, "order's SAGA_LEASE (and SAGA_SWEEP); pauses last over twice as long")
	keep := flag.Bool("keep", false, "keep each run's directory (pods' logs and stores)")
	quiet := flag.Bool("q", false, "no progress lines")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	repo, err := chaos.RepoRoot(".")
	if err != nil {
		return fail(err)
	}
	binDir, err := os.MkdirTemp("", "switchboard-chaos-bin-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintf(os.Stderr, "building switchboard and nats-server into %s\n", binDir)
	bins, err := chaos.Build(ctx, repo, binDir)
	if err != nil {
		return fail(err)
	}

	list := []uint64{*seed}
	if *seed == 0 {
		list = nil
		for i := range *seeds {
			list = append(list, *first+uint64(i))
		}
	}
	cfg := chaos.Config{Orders: *orders, Faults: *faults, Workers: *workers, Lease: *lease, Bins: bins, Keep: *keep}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	var failed []uint64
	var results []*chaos.Result
	for _, s := range list {
		cfg.Seed = s
		res, err := chaos.Run(ctx, cfg)
		if err != nil {
			return fail(fmt.Errorf("seed %d: %w", s, err))
		}
		results = append(results, res)
		failing := len(res.Failing(nil)) > 0
		// A failing seed's whole report: a rerun of the seed repeats its
		// schedule, not its interleaving, so this may be the only one.
		if len(list) == 1 || failing {
			res.Print(os.Stdout, nil)
		}
		fmt.Println(res.Summary(nil))
		if failing {
			failed = append(failed, s)
		}
	}
	if len(list) > 1 {
		totals(results)
	}
	fmt.Printf("%d seeds in %s; failing: %v\n", len(list), time.Since(began).Round(time.Second), failed)
	if len(failed) > 0 {
		fmt.Printf("reproduce one with: make chaos SEED=%d ORDERS=%d FAULTS=%d\n", failed[0], *orders, *faults)
		return 1
	}
	return 0
}

// totals sums the seeds: orders by final state, faults by kind, each
// invariant's violations and the seeds that broke it, the worst time to
// quiescence.
func totals(rs []*chaos.Result) {
	states, kinds := map[string]int{}, map[string]int{}
	violations, seeds := map[string]int{}, map[string][]uint64{}
	var worst time.Duration
	var worstSeed uint64
	quiet := 0
	for _, r := range rs {
		for k, n := range r.ByState {
			states[k] += n
		}
		for k, n := range r.FaultsByKind {
			kinds[k] += n
		}
		for _, c := range r.Checks {
			if len(c.Violations) > 0 {
				violations[c.Name] += len(c.Violations)
				seeds[c.Name] = append(seeds[c.Name], r.Seed)
			}
		}
		if r.Quiet {
			quiet++
			if r.QuietTook > worst {
				worst, worstSeed = r.QuietTook, r.Seed
			}
		}
	}
	fmt.Printf("\ntotals over %d seeds: orders %v; faults %v\n", len(rs), states, kinds)
	fmt.Printf("quiet in %d of %d seeds; worst time to quiescence among them %s (seed %d)\n", quiet, len(rs), worst.Round(100*time.Millisecond), worstSeed)
	for _, name := range chaos.Invariants {
		fmt.Printf("  %-22s %5d violations in %2d seeds %v\n", name, violations[name], len(seeds[name]), seeds[name])
	}
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
	return 2
}
