// Command switchboard runs Switchboard's microservices.
//
//	switchboard serve <service>    one service, configured from env vars (what the operator runs)
//	switchboard dev [flags]        every service and an embedded NATS in one process
//	switchboard render -f p.yaml   the manifests the operator would apply (like helm template)
//	switchboard broker-metrics     the broker's monitor as Prometheus metrics (the broker pods' sidecar)
//	switchboard dlq list|replay    the messages consumers gave up on, and their replay
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// command is one subcommand. Add new ones to commands.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":          {"run one service, configured from env vars", serve},
	"dev":            {"run every service and an embedded NATS on this machine", dev},
	"render":         {"print the manifests the operator would apply for a Platform file", renderCmd},
	"broker-metrics": {"serve a NATS broker's monitor figures as Prometheus metrics", brokerMetrics},
	"dlq":            {"list or replay the dead-letter stream (NATS_URL, NATS_USER, NATS_PASSWORD)", dlq},
}

// errUsage marks errors that deserve the usage text.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		if errors.Is(err, errUsage) {
			usage(os.Stderr)
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: switchboard <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-15s %s\n", n, commands[n].summary)
	}
}

// newLogger logs JSON (or text) to w at LOG_LEVEL (debug, info, warn,
// error).
func newLogger(w io.Writer, text bool) (*slog.Logger, error) {
	var lvl slog.Level
	if v := os.Getenv("LOG_LEVEL"); v != "" {
		if err := lvl.UnmarshalText([]byte(strings.ToUpper(v))); err != nil {
			return nil, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v)
		}
	}
	o := &slog.HandlerOptions{Level: lvl}
	// Records written inside a span carry trace_id and span_id.
	if text {
		return slog.New(kit.TraceHandler(slog.NewTextHandler(w, o))), nil
	}
	return slog.New(kit.TraceHandler(slog.NewJSONHandler(w, o))), nil
}
