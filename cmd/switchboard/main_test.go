package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"an unknown command", []string{"frobnicate"}, nil, "unknown command"},
		{"an unknown service", []string{"serve", "warehouse"}, nil, `unknown service "warehouse"`},
		{"a missing env var is named", []string{"serve", "order"}, map[string]string{"NATS_URL": ""}, "NATS_URL is required"},
		{"an unknown workload", []string{"dev", "--workloads", "gaming"}, nil, `unknown workload "gaming"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := run(context.Background(), tt.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDev runs `switchboard dev` as make dev does, follows the printed
// walk-through's steps, and stops it as Ctrl-C would.
func TestDev(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, w, io.Discard)
		w.Close()
	}()
	var out bytes.Buffer
	var gateway string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if url, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
			gateway = url
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	if gateway == "" {
		t.Fatalf("no ready line; output:\n%s\nerr: %v", out.String(), <-done)
	}
	for _, want := range []string{"/api/user/users", "/api/user/login", "/api/product/products", "/api/order/orders", "Idempotency-Key"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("walk-through lacks %s", want)
		}
	}
	resp, err := http.Get(gateway + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop")
	}
}
