package notification

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// smtpServer is a minimal SMTP server on a loopback port: it takes every
// message, or hangs where told to.
type smtpServer struct {
	Addr string

	mu       sync.Mutex
	messages []string
	hang     string // "", "greeting" (never says hello) or "data-end" (never answers the end of a message)
	refuse   int    // refuse this many RCPTs with a 451 before accepting

	stop chan struct{}
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{Addr: ln.Addr().String(), stop: make(chan struct{})}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		close(s.stop)
		ln.Close()
		conns.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { s.serve(c) })
		}
	}()
	return s
}

func (s *smtpServer) set(f func(s *smtpServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *smtpServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.messages...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	go func() { <-s.stop; c.Close() }()
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang == "greeting" {
		_, _ = io.Copy(io.Discard, c) // until the client gives up
		return
	}
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = io.WriteString(c, line+"\r\n") }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 test")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			say("250 OK")
		case strings.HasPrefix(cmd, "RCPT TO"):
			s.mu.Lock()
			refuse := s.refuse > 0
			if refuse {
				s.refuse--
			}
			s.mu.Unlock()
			if refuse {
				say("451 try again later")
			} else {
				say("250 OK")
			}
		case cmd == "DATA":
			say("354 go ahead")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			s.mu.Lock()
			s.messages = append(s.messages, msg.String())
			s.mu.Unlock()
			if hang == "data-end" {
				_, _ = io.Copy(io.Discard, c)
				return
			}
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// A server that never answers does not hold a send for ever.
func TestSMTPSendTimesOut(t *testing.T) {
	srv := startSMTP(t)
	srv.set(func(s *smtpServer) { s.hang = "greeting" })
	sender := SMTPSender{Addr: srv.Addr, From: "shop@test", Fallback: LogSender{Log: slog.Default()}, Timeout: 200 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		done <- sender.Send(context.Background(), Notification{Channel: Email, To: "ada@test", Body: "Subject: hi\n\nhello"})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a send to a server that never greets succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the send to a silent server was still waiting after 10s (timeout 200ms)")
	}
}

func mailNotifier(t *testing.T, sender Sender) (*Notifier, *kit.Store[Notification]) {
	t.Helper()
	st, _ := kit.NewStore[Notification](kittest.Bus(t, "notification").Bucket("notifications"))
	r, _ := NewRenderer()
	n, err := NewNotifier(st, r, sender)
	if err != nil {
		t.Fatal(err)
	}
	return n, st
}

func confirmedEvent(t *testing.T, order string) kit.Event {
	t.Helper()
	data, _ := json.Marshal(map[string]any{"id": order, "userId": "ada", "email": "ada@test", "total": 1000, "items": []any{}})
	return kit.Event{ID: kit.EventID(catalog.OrderConfirmed, order), Type: catalog.OrderConfirmed, Data: data}
}

// crashAfterSend plays an instance that dies right after the mail went out,
// before it could write anything down.
type crashAfterSend struct{ Sender }

type crash struct{}

func (c crashAfterSend) Send(ctx context.Context, n Notification) error {
	if err := c.Sender.Send(ctx, n); err != nil {
		return err
	}
	panic(crash{})
}

// The record is written before the send: a redelivery after a crash
// between the send and anything after it does not mail the customer twice.
func TestARedeliveryAfterACrashDoesNotSendTwice(t *testing.T) {
	srv := startSMTP(t)
	mail := SMTPSender{Addr: srv.Addr, From: "shop@test", Fallback: LogSender{Log: slog.Default()}}
	ev := confirmedEvent(t, "o1")
	st, _ := kit.NewStore[Notification](kittest.Bus(t, "notification").Bucket("notifications"))
	r, _ := NewRenderer()
	crashing, _ := NewNotifier(st, r, crashAfterSend{mail})
	func() {
		defer func() {
			if p := recover(); p != (crash{}) {
				t.Fatalf("the first delivery did not reach the send: %v", p)
			}
		}()
		_ = crashing.Handle(context.Background(), ev)
	}()
	if got := srv.received(); len(got) != 1 {
		t.Fatalf("the server holds %d messages after the first delivery, want 1", len(got))
	}

	// The event is redelivered to a healthy instance.
	healthy, _ := NewNotifier(st, r, mail)
	err := healthy.Handle(context.Background(), ev)
	if err != nil && !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("the redelivery: %v", err)
	}
	if got := srv.received(); len(got) != 1 {
		t.Fatalf("the customer got %d e-mails for one event", len(got))
	}
	list, _ := healthy.ForUser(context.Background(), "ada")
	if len(list) != 1 || list[0].Status != StatusUnknown {
		t.Fatalf("records %+v, want one whose outcome is unknown", list)
	}
}

// A send cut off after the message may have been taken is not repeated; a
// send the server refused is, and then succeeds.
func TestSendOutcomes(t *testing.T) {
	ctx := context.Background()
	t.Run("cut off after the data", func(t *testing.T) {
		srv := startSMTP(t)
		srv.set(func(s *smtpServer) { s.hang = "data-end" })
		n, _ := mailNotifier(t, SMTPSender{Addr: srv.Addr, From: "shop@test", Fallback: LogSender{Log: slog.Default()}, Timeout: 300 * time.Millisecond})
		ev := confirmedEvent(t, "o2")
		if err := n.Handle(ctx, ev); err != nil {
			t.Fatalf("a send that may have been delivered is not retried, so the event is done: %v", err)
		}
		srv.set(func(s *smtpServer) { s.hang = "" })
		if err := n.Handle(ctx, ev); !errors.Is(err, kit.ErrDuplicate) {
			t.Fatalf("redelivery: %v", err)
		}
		if got := srv.received(); len(got) != 1 {
			t.Fatalf("the server holds %d messages, want 1", len(got))
		}
		if list, _ := n.ForUser(ctx, "ada"); len(list) != 1 || list[0].Status != StatusUnknown {
			t.Fatalf("records %+v", list)
		}
	})
	t.Run("refused, then taken", func(t *testing.T) {
		srv := startSMTP(t)
		srv.set(func(s *smtpServer) { s.refuse = 1 })
		n, _ := mailNotifier(t, SMTPSender{Addr: srv.Addr, From: "shop@test", Fallback: LogSender{Log: slog.Default()}})
		ev := confirmedEvent(t, "o3")
		if err := n.Handle(ctx, ev); err == nil || errors.Is(err, kit.ErrDuplicate) {
			t.Fatalf("a refused send must be retried: %v", err)
		}
		if list, _ := n.ForUser(ctx, "ada"); len(list) != 1 || list[0].Status != StatusFailed {
			t.Fatalf("after the refusal: %+v", list)
		}
		if err := n.Handle(ctx, ev); err != nil {
			t.Fatalf("the retry: %v", err)
		}
		if err := n.Handle(ctx, ev); !errors.Is(err, kit.ErrDuplicate) {
			t.Fatalf("after it was sent: %v", err)
		}
		got := srv.received()
		if len(got) != 1 || !strings.Contains(got[0], "Subject: Order o3 confirmed") {
			t.Fatalf("the server holds %q", got)
		}
		if list, _ := n.ForUser(ctx, "ada"); len(list) != 1 || list[0].Status != StatusSent || list[0].Attempts != 2 || list[0].SentAt.IsZero() {
			t.Fatalf("after the retry: %+v", list)
		}
	})
}
