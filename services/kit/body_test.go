//go:build unix

package kit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// bodyServer answers POST /things through kit.Decode, as every service's
// handlers do.
func bodyServer(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) {
		v, err := kit.Decode[map[string]any](r)
		kit.Reply(w, r, http.StatusCreated, v, err)
	})
	srv := httptest.NewUnstartedServer(kit.Middleware(quiet, kit.NewMetrics("t"), mux))
	ln, err := (&net.ListenConfig{Control: bufferSize(syscall.SO_RCVBUF)}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// bufferSize sets a socket's receive or send buffer small before the
// handshake, as a busy or distant peer has in effect: a body the server
// does not read then cannot hide in the kernel's buffers, and the client is
// still sending when the server decides. (Shrunk after the handshake, the
// buffers stall the window instead.)
func bufferSize(opt int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 16<<10) })
		return errors.Join(err, serr)
	}
}

// rawRequest writes a whole request, body included, before reading the
// answer, as simple clients (Python's http.client among them) do, and
// returns the answer. An error means the client met a reset or a closed
// connection instead of an answer.
func rawRequest(addr string, head string, body []byte) (*http.Response, []byte, error) {
	conn, err := (&net.Dialer{Control: bufferSize(syscall.SO_SNDBUF)}).Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	// A guard against a server that reads nothing: the test fails instead
	// of hanging. Nothing is asserted on time.
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, head); err != nil {
		return nil, nil, fmt.Errorf("writing the head: %w", err)
	}
	if _, err := conn.Write(body); err != nil {
		return nil, nil, fmt.Errorf("writing the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func want413(t *testing.T, resp *http.Response, b []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var e kit.ErrorBody
	if resp.StatusCode != http.StatusRequestEntityTooLarge || json.Unmarshal(b, &e) != nil || e.Error.Code != kit.CodeTooLarge {
		t.Fatalf("%d %s, want a JSON 413 %s", resp.StatusCode, b, kit.CodeTooLarge)
	}
	if !resp.Close {
		t.Error("the 413 keeps the connection open, with the rest of the body unread")
	}
}

// A body declared over the limit is refused before it is read, and the
// client, which sends all of it before reading, reads the 413 every time
// rather than a reset.
func TestOversizeBodyWithContentLengthGetsItsAnswer(t *testing.T) {
	addr := bodyServer(t)
	body := bytes.Repeat([]byte("x"), 2<<20)
	head := fmt.Sprintf("POST /things HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	for i := range 50 {
		resp, b, err := rawRequest(addr, head, body)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		want413(t, resp, b, nil)
	}
}

// A chunked body has no length to refuse up front: it is refused when the
// handler reads past the limit, and the rest is drained so the client still
// reads the answer.
func TestOversizeChunkedBodyGetsItsAnswer(t *testing.T) {
	addr := bodyServer(t)
	var chunked bytes.Buffer
	chunk := `{"x":"` + strings.Repeat("a", 64<<10)
	for chunked.Len() < 2<<20 {
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(chunk), chunk)
		chunk = strings.Repeat("a", 64<<10)
	}
	chunked.WriteString("0\r\n\r\n")
	head := "POST /things HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
	for i := range 20 {
		resp, b, err := rawRequest(addr, head, chunked.Bytes())
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		want413(t, resp, b, nil)
	}
}

// A client that waits for "100 Continue" is answered 413 at once and never
// sends its body.
func TestOversizeBodyAfterExpectContinueIsNotAwaited(t *testing.T) {
	addr := bodyServer(t)
	resp, b, err := rawRequest(addr, fmt.Sprintf(
		"POST /things HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", 2<<20), nil)
	want413(t, resp, b, err)
}

// A body within the limit is read whole, and the connection stays usable.
func TestBodyWithinTheLimitKeepsTheConnection(t *testing.T) {
	addr := bodyServer(t)
	body := `{"x":"` + strings.Repeat("a", kit.MaxBodyBytes-16) + `"}`
	resp, b, err := rawRequest(addr, fmt.Sprintf(
		"POST /things HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", len(body)), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || resp.Close {
		t.Fatalf("%d (close %v): %.200s", resp.StatusCode, resp.Close, b)
	}
}
