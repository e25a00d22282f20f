package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func TestBrokerMetricsFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown flag", []string{"--monitor", "http://x"}, "flag provided but not defined: -monitor"},
		{"an argument", []string{"extra"}, `takes no arguments, got ["extra"]`},
		{"a monitor URL without scheme", []string{"--monitor-url", "127.0.0.1:8222"}, "--monitor-url: monitor URL \"127.0.0.1:8222\": want an http:// or https:// URL"},
		{"a NATS URL for the monitor", []string{"--monitor-url", "nats://127.0.0.1:4222"}, "want an http:// or https:// URL"},
		{"an address without port", []string{"--addr", "7777"}, `--addr "7777": want host:port or :port`},
		{"a zero timeout", []string{"--timeout", "0s"}, "--timeout 0s must be positive"},
		{"a timeout without unit", []string{"--timeout", "2"}, `invalid value "2" for flag -timeout`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"broker-metrics"}, tt.args...), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tt.want)
			}
		})
	}
	t.Run("an address in use is reported", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		addr, done := startBrokerMetrics(t, ctx, "http://127.0.0.1:1")
		defer func() { cancel(); <-done }()
		err := run(context.Background(), []string{"broker-metrics", "--addr", addr}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("err = %v", err)
		}
	})
}

// startBrokerMetrics runs the subcommand on a random port and returns its
// address, read from the "serving" log line, and its result.
func startBrokerMetrics(t *testing.T, ctx context.Context, monitor string) (string, <-chan error) {
	t.Helper()
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"broker-metrics", "--monitor-url", monitor, "--addr", "127.0.0.1:0"}, io.Discard, w)
		w.Close()
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			return line.Addr, done
		}
	}
	t.Fatalf("no serving line; err: %v", <-done)
	return "", nil
}

// TestBrokerMetrics runs `switchboard broker-metrics` beside a real broker,
// scrapes it, and stops it as the kubelet's SIGTERM would.
func TestBrokerMetrics(t *testing.T) {
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer s.Shutdown()

	ctx, cancel := context.WithCancel(context.Background())
	addr, done := startBrokerMetrics(t, ctx, "http://"+s.MonitorAddr().String())
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(b)
	}
	if body := get("/healthz"); body != "ok\n" {
		t.Errorf("/healthz: %q", body)
	}
	body := get("/metrics")
	for _, want := range []string{"switchboard_nats_up 1\n", "switchboard_nats_jetstream_streams 0\n", "# TYPE switchboard_nats_in_messages_total counter\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}

	s.Shutdown()
	if body := get("/metrics"); !strings.Contains(body, "switchboard_nats_up 0\n") || strings.Contains(body, "switchboard_nats_connections") {
		t.Errorf("/metrics of a stopped broker:\n%s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker-metrics stopped with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker-metrics did not stop")
	}
}
