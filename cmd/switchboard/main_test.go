package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
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
		{"a service without its identity does not start", []string{"serve", "gateway"}, map[string]string{
			"TOKEN_KEYS": kittest.TokenKeysPEM(), "TLS_DIR": "", "HTTP_ADDR": "127.0.0.1:0", "OPS_ADDR": "127.0.0.1:0"}, "TLS_DIR is required"},
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

// startDev runs `switchboard dev` on dir as make dev does, until its ready
// line; stop ends it as Ctrl-C would.
func startDev(t *testing.T, dir string) (gateway, banner string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--addr", "127.0.0.1:0", "--data", dir}, w, io.Discard)
		w.Close()
	}()
	var out bytes.Buffer
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
		cancel()
		t.Fatalf("no ready line; output:\n%s\nerr: %v", out.String(), <-done)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
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
	t.Cleanup(stop)
	return gateway, out.String(), stop
}

// TestDev follows the printed walk-through's steps.
func TestDev(t *testing.T) {
	gateway, banner, stop := startDev(t, t.TempDir())
	for _, want := range []string{"/api/user/users", "/api/user/login", "/api/product/products", "/api/order/orders", "Idempotency-Key", "/api/user/logout", "/api/user/admins"} {
		if !strings.Contains(banner, want) {
			t.Errorf("walk-through lacks %s", want)
		}
	}
	resp, err := http.Get(gateway + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	stop()
}

var adminLine = regexp.MustCompile(`(?m)^  (email|password) +(\S+)$`)

// admin reads the first admin's credentials off the banner.
func admin(t *testing.T, banner string) (email, password string) {
	t.Helper()
	for _, m := range adminLine.FindAllStringSubmatch(banner, -1) {
		switch m[1] {
		case "email":
			email = m[2]
		case "password":
			password = m[2]
		}
	}
	if email == "" || password == "" {
		t.Fatalf("the banner names no admin:\n%s", banner)
	}
	return email, password
}

func postJSON(t *testing.T, url, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// With --data, what makes the platform the same one survives a restart: a
// token issued before it still works after it, and the admin keeps its
// password. The admin's token also passes an admin-only route.
func TestDevKeepsTokensAndAdminAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	gateway, banner, stop := startDev(t, dir)
	email, password := admin(t, banner)
	st, raw := postJSON(t, gateway+"/api/user/login", "", fmt.Sprintf(`{"email":%q,"password":%q}`, email, password))
	if st != http.StatusOK {
		t.Fatalf("admin login: %d %s", st, raw)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatal(err)
	}
	var claims kit.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(tok.Token, &claims); err != nil || !claims.IsAdmin() {
		t.Fatalf("the admin's token: %+v %v", claims, err)
	}
	stop()

	gateway, again, _ := startDev(t, dir)
	if e, p := admin(t, again); e != email || p != password {
		t.Errorf("after the restart the admin is %s / %s, want %s / %s", e, p, email, password)
	}
	req, _ := http.NewRequest("GET", gateway+"/api/user/users/"+claims.Subject, nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the token issued before the restart answers %d after it", resp.StatusCode)
	}
	if st, raw := postJSON(t, gateway+"/api/user/admins", tok.Token, fmt.Sprintf(`{"userId":%q}`, claims.Subject)); st != http.StatusOK {
		t.Fatalf("POST /admins with the admin's token: %d %s", st, raw)
	}
}
