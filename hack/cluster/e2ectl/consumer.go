package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type consumerFlags struct {
	url, user, password, stream, consumer string
}

func (c *consumerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "nats", "", "broker URL, e.g. nats://10.244.0.20:4222")
	fs.StringVar(&c.user, "user", "", "broker user (the Platform's administrative user, Secret <p>-auth)")
	fs.StringVar(&c.password, "password", "", "its password")
	fs.StringVar(&c.stream, "stream", "", "stream")
	fs.StringVar(&c.consumer, "consumer", "", "durable consumer")
}

func (c *consumerFlags) connect() (*nats.Conn, jetstream.JetStream, error) {
	if c.url == "" || c.stream == "" || c.consumer == "" {
		return nil, nil, errors.New("--nats, --stream and --consumer are required")
	}
	nc, err := nats.Connect(c.url, nats.UserInfo(c.user, c.password), nats.Name("cluster-e2e"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func consumerPause(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("consumer-pause", flag.ContinueOnError)
	var c consumerFlags
	c.register(fs)
	d := fs.Duration("for", time.Minute, "how long deliveries stop")
	if err := parse(fs, args); err != nil {
		return err
	}
	nc, js, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := js.PauseConsumer(ctx, c.stream, c.consumer, time.Now().Add(*d))
	if err != nil {
		return fmt.Errorf("pause %s/%s: %w", c.stream, c.consumer, err)
	}
	fmt.Fprintf(stdout, "consumer %s/%s paused until %s\n", c.stream, c.consumer, r.PauseUntil.UTC().Format(time.RFC3339))
	return nil
}

func consumerResume(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("consumer-resume", flag.ContinueOnError)
	var c consumerFlags
	c.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	nc, js, err := c.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.ResumeConsumer(ctx, c.stream, c.consumer); err != nil {
		return fmt.Errorf("resume %s/%s: %w", c.stream, c.consumer, err)
	}
	fmt.Fprintf(stdout, "consumer %s/%s resumed\n", c.stream, c.consumer)
	return nil
}
