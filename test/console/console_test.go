//go:build console

package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// repoRoot is where the module lives, two levels up from here.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// devPlatform is a running `switchboard dev`: its gateway and first admin,
// as its banner prints them.
type devPlatform struct {
	gateway, adminEmail, adminPassword string
}

// startDev builds the binary (or takes SWITCHBOARD_BIN) and runs
// `switchboard dev` on a free loopback port until the test ends.
func startDev(t *testing.T) devPlatform {
	t.Helper()
	bin := os.Getenv("SWITCHBOARD_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "switchboard")
		build := exec.Command("go", "build", "-o", bin, "./cmd/switchboard")
		build.Dir = repoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "dev", "--addr", addr)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("switchboard dev's log (tail):\n%s", tail(stderr.String(), 4000))
		}
	})
	// The banner: "  email         admin@…", "  password      …", then
	// "ready http://…" once every service answers.
	var p devPlatform
	email := regexp.MustCompile(`^  email\s+(\S+)$`)
	password := regexp.MustCompile(`^  password\s+(\S+)$`)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if m := email.FindStringSubmatch(line); m != nil && p.adminEmail == "" {
			p.adminEmail = m[1]
		}
		if m := password.FindStringSubmatch(line); m != nil && p.adminPassword == "" {
			p.adminPassword = m[1]
		}
		if u, ok := strings.CutPrefix(line, "ready "); ok {
			p.gateway = u
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if p.gateway == "" || p.adminPassword == "" {
		t.Fatalf("switchboard dev did not come up (admin %q): %s", p.adminEmail, tail(stderr.String(), 4000))
	}
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// call is one JSON call of the public API.
func call(t *testing.T, base, method, path, token string, body any, hdr ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func mustToken(t *testing.T, base, path, email, password string) string {
	t.Helper()
	status, body := call(t, base, "POST", path, "", map[string]string{"email": email, "password": password})
	tok, _ := body["token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("login at %s: %d %v", path, status, body)
	}
	return tok
}

// browserErrors collects what the page reports as an error: console.error
// and console.assert, uncaught exceptions, and the browser's own error
// log (a failed request, a refused script).
type browserErrors struct {
	mu   sync.Mutex
	list []string
}

func (b *browserErrors) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.list = append(b.list, s)
}

func (b *browserErrors) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}

func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: apt-get install chromium (or set CHROMIUM to its path)")
	return ""
}

// text is an element's text, "" when it is not there.
func text(ctx context.Context, sel string) string {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel)))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// count is how many elements sel matches.
func count(ctx context.Context, sel string) int {
	n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	return n
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last seen: %s)", what, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConsoleInChromium(t *testing.T) {
	p := startDev(t)
	imgDir := filepath.Join(repoRoot(t), "docs", "img")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in a container
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()

	var errs browserErrors
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || m.Type == "assert" {
				errs.add(m.String() + " " + m.URL)
			}
		}
	}()
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if list := errs.all(); len(list) > 0 {
			t.Errorf("the page reported %d errors:\n%s", len(list), strings.Join(list, "\n"))
		}
	}()

	// Sign in with the keyboard alone: type, Tab, type, Enter.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(p.gateway+"/console"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.Focus(chromedp.CSS("#email")),
		chromedp.KeyEvent(p.adminEmail),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent(p.adminPassword),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#board")),
	); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	eventually(t, 15*time.Second, "every service on the platform table", func() (bool, string) {
		n := count(ctx, "#services tbody tr")
		return n == 11, strconv.Itoa(n) + " rows"
	})
	// From here on, numbers change under the reader's eyes; none of it may
	// move the layout.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__shift = 0;
		new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) window.__shift += e.value; })
		  .observe({type: 'layout-shift', buffered: false});`)); err != nil {
		t.Fatal(err)
	}

	// Orders through the API: one confirmed, one cancelled (more than the
	// stock), each on the page within 2 s.
	email := fmt.Sprintf("console-%d@example.com", time.Now().UnixNano())
	if status, body := call(t, p.gateway, "POST", "/api/user/users", "", map[string]string{"email": email, "name": "Console Test", "password": "correct-horse"}); status != http.StatusCreated {
		t.Fatalf("sign up: %d %v", status, body)
	}
	user := mustToken(t, p.gateway, "/api/user/login", email, "correct-horse")
	var orderIDs []string
	for i, qty := range []int{1, 1000} {
		placed := time.Now()
		status, body := call(t, p.gateway, "POST", "/api/order/orders", user,
			map[string]any{"items": []map[string]any{{"productId": "keyboard", "quantity": qty}}, "paymentMethod": "card", "shippingAddress": "1 Main St"},
			"Idempotency-Key", fmt.Sprintf("console-%d-%d", time.Now().UnixNano(), i))
		o := body
		if inner, ok := body["order"].(map[string]any); ok {
			o = inner
		}
		id, _ := o["id"].(string)
		if id == "" || (status != http.StatusCreated && status != http.StatusConflict && status != http.StatusUnprocessableEntity) {
			t.Fatalf("order %d: %d %v", i, status, body)
		}
		orderIDs = append(orderIDs, id)
		sel := fmt.Sprintf(`#orders tbody tr[data-order-id=%q]`, id)
		eventually(t, 2*time.Second-time.Since(placed), "order "+id+" on the page", func() (bool, string) {
			return count(ctx, sel) == 1, text(ctx, "#flow-error")
		})
		t.Logf("order %s (%v) on the page %s after it was placed", id, o["status"], time.Since(placed).Round(time.Millisecond))
	}
	status := func(id string) string {
		return text(ctx, fmt.Sprintf(`#orders tbody tr[data-order-id=%q] td .state`, id))
	}
	eventually(t, 5*time.Second, "the orders' outcomes", func() (bool, string) {
		return status(orderIDs[0]) == "confirmed" && status(orderIDs[1]) == "cancelled", status(orderIDs[0]) + " " + status(orderIDs[1])
	})

	// A playback session: the live viewers of the title rise, then fall
	// when it stops.
	viewers := func() int {
		n, _ := strconv.Atoi(text(ctx, `#live tbody tr[data-title="sintel"] td`))
		return n
	}
	before := viewers()
	acct := fmt.Sprintf("console-%d@tv.example.com", time.Now().UnixNano())
	if status, body := call(t, p.gateway, "POST", "/api/account/accounts", "", map[string]string{"email": acct, "password": "correct-horse", "plan": "premium"}); status != http.StatusCreated {
		t.Fatalf("streaming sign-up: %d %v", status, body)
	}
	viewer := mustToken(t, p.gateway, "/api/account/login", acct, "correct-horse")
	st, session := call(t, p.gateway, "POST", "/api/playback/sessions", viewer, map[string]string{"contentId": "sintel", "region": "eu"})
	sid, _ := session["sessionId"].(string)
	if st != http.StatusCreated || sid == "" {
		t.Fatalf("playback: %d %v", st, session)
	}
	eventually(t, 10*time.Second, "sintel's live viewers rising", func() (bool, string) {
		return viewers() == before+1, text(ctx, "#live")
	})
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView(chromedp.CSS("#streaming"))); err != nil {
		t.Fatal(err)
	}
	if err := screenshot(ctx, filepath.Join(imgDir, "console.png"), true); err != nil {
		t.Fatal(err)
	}
	if st, body := call(t, p.gateway, "DELETE", "/api/playback/sessions/"+sid, viewer, nil); st != http.StatusNoContent {
		t.Fatalf("stop: %d %v", st, body)
	}
	eventually(t, 10*time.Second, "sintel's live viewers falling", func() (bool, string) {
		return viewers() == before, text(ctx, "#live")
	})

	// The confirmed order's trace: its link opens the waterfall, with the
	// saga's spans across the services it crossed.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#orders tbody tr[data-order-id=%q] a`, orderIDs[0])))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the order's trace waterfall", func() (bool, string) {
		services, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...new Set([...document.querySelectorAll('#waterfall li')].map((li) => li.dataset.service))].sort()`))
		want := []string{"gateway", "order", "payment", "product"}
		for _, s := range want {
			if !contains(services, s) {
				return false, fmt.Sprintf("services %v; %s", services, text(ctx, "#trace-info"))
			}
		}
		return true, ""
	})
	spans, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#waterfall li')].map((li) => li.dataset.service + ' ' + li.dataset.span)`))
	t.Logf("the waterfall: %d spans: %s", len(spans), strings.Join(spans, " | "))
	if err := screenshotOf(ctx, "#traces", filepath.Join(imgDir, "console-trace.png")); err != nil {
		t.Fatal(err)
	}

	shift, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.__shift`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cumulative layout shift while the figures changed: %.4f", shift)
	if shift > 0.05 {
		t.Errorf("the layout shifted by %.4f as numbers changed, want at most 0.05", shift)
	}

	// On a phone: the same page, one column, nothing cut off sideways.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait),
		chromedp.Navigate(p.gateway+"/console"),
		chromedp.WaitVisible(chromedp.CSS("#board")),
	); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the phone's page filled in", func() (bool, string) {
		n := count(ctx, "#services tbody tr")
		return n == 11, strconv.Itoa(n)
	})
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("on a phone the page scrolls sideways")
	}
	if err := screenshot(ctx, filepath.Join(imgDir, "console-phone.png"), false); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func screenshot(ctx context.Context, path string, full bool) error {
	var b []byte
	var err error
	if full {
		b, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	} else {
		b, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func screenshotOf(ctx context.Context, sel, path string) error {
	b, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
