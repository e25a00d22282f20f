// Package streamtest holds the HTTP helpers the streaming services' tests
// share: a JSON client that fails the test on transport errors and returns
// the status, so a test reads as a list of calls and expected answers.
package streamtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// Client calls one base URL, optionally with a bearer token.
type Client struct {
	T     testing.TB
	Base  string
	Token string
}

// As returns a copy of c that sends token.
func (c Client) As(token string) Client {
	c.Token = token
	return c
}

// Do sends body (JSON, when not nil) and decodes the answer into out (when
// not nil). It returns the status and the raw body.
func (c Client) Do(method, path string, body, out any) (int, []byte) {
	c.T.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.T.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	// As the gateway: services' API ports admit its certificate alone.
	resp, err := kittest.GatewayHTTP(c.T).Do(req)
	if err != nil {
		c.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.T.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.T.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// Must is Do that fails the test unless the status is want.
func (c Client) Must(want int, method, path string, body, out any) []byte {
	c.T.Helper()
	got, raw := c.Do(method, path, body, out)
	if got != want {
		c.T.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, raw)
	}
	return raw
}

// ErrorBody is the shape of every error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// Err decodes an error answer.
func Err(t testing.TB, raw []byte) ErrorBody {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an error body: %s", raw)
	}
	return e
}

// Merge returns the union of envs, later ones winning.
func Merge(envs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, e := range envs {
		for k, v := range e {
			out[k] = v
		}
	}
	return out
}
