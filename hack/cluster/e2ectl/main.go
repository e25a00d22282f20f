// Command e2ectl is cluster-e2e's helper for what curl and jq do badly: it
// runs on the host, next to e2e.sh, and talks to the cluster through the
// node address (NodePorts) and the pods' addresses on the bridge.
//
//	e2ectl consumer-pause  --nats URL --user U --password P --stream S --consumer C --for 90s
//	e2ectl consumer-resume --nats URL --user U --password P --stream S --consumer C
//	e2ectl playback-load   --base http://10.244.0.1:30080 --accounts 8 --rounds 20
//	e2ectl dashboard       --prometheus http://10.244.0.1:30090 --dashboard switchboard.json --namespace demo --window 5m
//
// consumer-pause holds a durable consumer's deliveries (JetStream's consumer
// pause), so the events published meanwhile wait as its backlog, which is
// what KEDA's nats-jetstream scaler reads; the pause ends by itself.
// playback-load makes playback events through the gateway as customers
// would: premium accounts, four sessions each, heartbeats at the rate
// playback admits. dashboard runs every query of the chart's Grafana
// dashboard against Prometheus and fails when any returns no series.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"consumer-pause":  {"pause a JetStream consumer's deliveries for a while", consumerPause},
	"consumer-resume": {"resume a paused JetStream consumer", consumerResume},
	"playback-load":   {"start playback sessions and send heartbeats through the gateway", playbackLoad},
	"dashboard":       {"run the Grafana dashboard's queries against Prometheus; fail on any without data", dashboard},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "e2ectl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: e2ectl <" + strings.Join(names(), "|") + "> [flags]")
	}
	c, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (want one of %s)", args[0], strings.Join(names(), ", "))
	}
	return c.run(ctx, args[1:], stdout)
}

func names() []string {
	var n []string
	for k := range commands {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// parse parses fs and refuses positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", fs.Name(), fs.Args())
	}
	return nil
}
