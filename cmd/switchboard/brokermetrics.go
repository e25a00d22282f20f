package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/switchboard-dev/switchboard/services/brokermetrics"
)

// brokerMetrics serves the broker's monitor figures as Prometheus metrics:
// the sidecar the operator renders into every broker pod.
func brokerMetrics(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker-metrics", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard broker-metrics [--monitor-url http://127.0.0.1:8222] [--addr :7777] [--timeout 2s]")
		fmt.Fprintln(stderr, "\nServes GET /metrics (switchboard_nats_*, from the nats-server monitor's /varz and /jsz) and GET /healthz.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	monitor := fs.String("monitor-url", "http://127.0.0.1:8222", "base URL of the nats-server HTTP monitor")
	addr := fs.String("addr", ":7777", "address to serve /metrics and /healthz on")
	timeout := fs.Duration("timeout", brokermetrics.DefaultTimeout, "how long one scrape may wait for the monitor")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: broker-metrics takes no arguments, got %q", errUsage, fs.Args())
	}
	if *timeout <= 0 {
		return fmt.Errorf("%w: --timeout %v must be positive", errUsage, *timeout)
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return fmt.Errorf("%w: --addr %q: want host:port or :port (%v)", errUsage, *addr, err)
	}
	log, err := newLogger(stderr, false)
	if err != nil {
		return err
	}
	c, err := brokermetrics.NewCollector(*monitor, *timeout, log)
	if err != nil {
		return fmt.Errorf("%w: --monitor-url: %v", errUsage, err)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", l.Addr().String(), "monitor", *monitor, "timeout", timeout.String())
	return brokermetrics.Serve(ctx, l, brokermetrics.Handler(c), log)
}
