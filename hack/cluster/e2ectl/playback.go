package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// tally counts answers by "kind status".
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) add(kind string, status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]int{}
	}
	t.n[fmt.Sprintf("%s %d", kind, status)]++
}

func (t *tally) get(kind string, status int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[fmt.Sprintf("%s %d", kind, status)]
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keys []string
	for k := range t.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", k, t.n[k])
	}
	return b.String()
}

type api struct {
	base string
	c    *http.Client
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func (a api) call(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

type viewer struct {
	token    string
	sessions []string
}

func playbackLoad(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("playback-load", flag.ContinueOnError)
	base := fs.String("base", "", "gateway base URL")
	accounts := fs.Int("accounts", 8, "premium accounts to sign up (four sessions each)")
	rounds := fs.Int("rounds", 20, "heartbeats per session")
	interval := fs.Duration("interval", 1100*time.Millisecond, "between two heartbeats of a session (playback's minimum is 1s)")
	content := fs.String("content", "big-buck-bunny", "title to watch")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *base == "" {
		return errors.New("--base is required")
	}
	a := api{base: strings.TrimSuffix(*base, "/"), c: &http.Client{Timeout: 10 * time.Second}}
	var t tally
	stamp := time.Now().UnixNano()
	viewers := make([]*viewer, *accounts)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for i := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := fmt.Sprintf("load-%d-%d@example.com", stamp, i)
			cred := map[string]string{"email": email, "password": "correct-horse"}
			if st, err := a.call(ctx, http.MethodPost, "/api/account/accounts", "", map[string]string{"email": email, "password": "correct-horse", "plan": "premium"}, nil); err != nil || st != http.StatusCreated {
				fail(fmt.Errorf("sign up %s: %d %v", email, st, err))
				return
			}
			var login struct {
				Token string `json:"token"`
			}
			if st, err := a.call(ctx, http.MethodPost, "/api/account/login", "", cred, &login); err != nil || login.Token == "" {
				fail(fmt.Errorf("log in %s: %d %v", email, st, err))
				return
			}
			v := &viewer{token: login.Token}
			for range 4 { // a premium plan's concurrent streams
				var s struct {
					SessionID string `json:"sessionId"`
				}
				st, err := a.call(ctx, http.MethodPost, "/api/playback/sessions", v.token, map[string]string{"contentId": *content, "region": "eu"}, &s)
				t.add("start", st)
				if err != nil || s.SessionID == "" {
					fail(fmt.Errorf("start a session: %d %v", st, err))
					return
				}
				v.sessions = append(v.sessions, s.SessionID)
			}
			viewers[i] = v
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("%w (so far: %s)", firstErr, &t)
	}
	start := time.Now()
	for r := range *rounds {
		next := time.Now().Add(*interval)
		for _, v := range viewers {
			for _, s := range v.sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := map[string]int{"positionSec": 10 * (r + 1), "bandwidthKbps": 8000, "bufferSec": 20}
					st, _ := a.call(ctx, http.MethodPost, "/api/playback/sessions/"+s+"/heartbeat", v.token, body, nil)
					t.add("heartbeat", st)
				}()
			}
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Until(next))
	}
	for _, v := range viewers {
		for _, s := range v.sessions {
			st, _ := a.call(ctx, http.MethodDelete, "/api/playback/sessions/"+s, v.token, nil, nil)
			t.add("stop", st)
		}
	}
	events := t.get("start", http.StatusCreated) + t.get("heartbeat", http.StatusOK) + t.get("heartbeat", http.StatusAccepted) +
		t.get("stop", http.StatusOK) + t.get("stop", http.StatusNoContent)
	fmt.Fprintf(stdout, "playback-load: %d accounts, %d sessions, %d heartbeat rounds in %s; answers: %s\n",
		*accounts, 4**accounts, *rounds, time.Since(start).Round(time.Second), &t)
	fmt.Fprintf(stdout, "events %d\n", events)
	return nil
}
