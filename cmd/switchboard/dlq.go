package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

const dlqUsage = `usage:
  switchboard dlq list [--consumer DURABLE] [--json]
  switchboard dlq replay [--consumer DURABLE] (ID... | --all)

list shows the messages consumers gave up on (stream DLQ): id, consumer,
original subject, why, the last error and when. replay publishes each one
again on its original subject, with its data and headers, and removes it
from the stream; every consumer of that subject sees it again and drops it
if it had applied it.

The broker comes from the environment, as for a service:
  NATS_URL                   nats://host:4222 (required)
  NATS_USER, NATS_PASSWORD   its credentials, set together
On a cluster, read them from the Platform's <p>-auth Secret and port-forward
the broker's client Service <p>-nats.`

// dlq lists and replays the dead-letter stream.
func dlq(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			return fmt.Errorf("%w: dlq needs a subcommand, list or replay\n%s", errUsage, dlqUsage)
		}
		fmt.Fprintln(stdout, dlqUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, dlqUsage) }
	consumer := fs.String("consumer", "", "only this consumer's (durable name) dead letters")
	var asJSON, all *bool
	switch sub {
	case "list":
		asJSON = fs.Bool("json", false, "one JSON object per line instead of a table")
	case "replay":
		all = fs.Bool("all", false, "replay every dead letter (of --consumer, if given)")
	default:
		return fmt.Errorf("%w: unknown dlq subcommand %q; want list or replay\n%s", errUsage, sub, dlqUsage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: dlq %s: %v", errUsage, sub, err)
	}
	if *consumer != "" && !knownDurable(*consumer) {
		return fmt.Errorf("%w: --consumer %q is no consumer in the catalog", errUsage, *consumer)
	}
	var ids []uint64
	if sub == "replay" {
		for _, a := range fs.Args() {
			id, err := strconv.ParseUint(a, 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("%w: dlq replay: %q is not a dead letter id (the ID column of dlq list)", errUsage, a)
			}
			ids = append(ids, id)
		}
		if *all == (len(ids) > 0) {
			return fmt.Errorf("%w: dlq replay takes either ids or --all", errUsage)
		}
	} else if fs.NArg() > 0 {
		return fmt.Errorf("%w: dlq list takes no arguments, got %q", errUsage, fs.Args())
	}

	js, closeConn, err := dialBroker(os.Getenv)
	if err != nil {
		return err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	if sub == "list" {
		list, err := kit.DeadLetters(ctx, js, *consumer)
		if err != nil {
			return err
		}
		return printDeadLetters(stdout, list, *asJSON)
	}
	var todo []kit.DeadLetter
	if *all {
		if todo, err = kit.DeadLetters(ctx, js, *consumer); err != nil {
			return err
		}
	}
	for _, id := range ids {
		d, err := kit.DeadLetterByID(ctx, js, id)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("no dead letter %d (see switchboard dlq list)", id)
		}
		if err != nil {
			return err
		}
		if *consumer != "" && d.Consumer != *consumer {
			return fmt.Errorf("dead letter %d is %s's, not %s's", id, d.Consumer, *consumer)
		}
		todo = append(todo, d)
	}
	for _, d := range todo {
		if err := kit.Replay(ctx, js, d); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replayed %d (%s, %s) to %s\n", d.ID, d.Consumer, d.MsgID, d.Subject)
	}
	if len(todo) == 0 {
		fmt.Fprintln(stdout, "no dead letters to replay")
	}
	return nil
}

func knownDurable(durable string) bool {
	for _, s := range catalog.All() {
		if _, ok := s.Consumer(durable); ok {
			return true
		}
	}
	return false
}

// dialBroker connects to NATS_URL with NATS_USER and NATS_PASSWORD, failing
// fast: an operator at a terminal wants an answer, not endless retries.
func dialBroker(getenv func(string) string) (jetstream.JetStream, func(), error) {
	raw := strings.TrimSpace(getenv(catalog.EnvNATSURL))
	if raw == "" {
		return nil, nil, fmt.Errorf("%w: %s is required (the broker, e.g. nats://127.0.0.1:4222)", errUsage, catalog.EnvNATSURL)
	}
	for _, u := range strings.Split(raw, ",") {
		if pu, err := url.Parse(strings.TrimSpace(u)); err != nil || pu.Host == "" {
			return nil, nil, fmt.Errorf("%w: %s=%q: want nats://host:port[,…]", errUsage, catalog.EnvNATSURL, raw)
		}
	}
	user, pass := getenv(catalog.EnvNATSUser), getenv(catalog.EnvNATSPassword)
	if (user == "") != (pass == "") {
		return nil, nil, fmt.Errorf("%w: %s and %s must be set together", errUsage, catalog.EnvNATSUser, catalog.EnvNATSPassword)
	}
	opts := []nats.Option{nats.Name("switchboard-dlq"), nats.Timeout(5 * time.Second)}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	nc, err := nats.Connect(raw, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", raw, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, func() { _ = nc.Drain() }, nil
}

func printDeadLetters(w io.Writer, list []kit.DeadLetter, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, d := range list {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return nil
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCONSUMER\tSUBJECT\tMSG-ID\tREASON\tDELIVERIES\tTIME\tERROR")
	for _, d := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Consumer, d.Subject, d.MsgID, d.Reason, d.Deliveries,
			d.Time.UTC().Format(time.RFC3339), d.Error)
	}
	return tw.Flush()
}
