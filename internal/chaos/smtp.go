package chaos

import (
	"bufio"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// mailbox is an SMTP server standing in for the e-mail relay notification
// sends through (SMTP_ADDR). It counts what was actually sent, which the
// notification records alone cannot show: a record written once after two
// sends looks the same as one send.
type mailbox struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	sent  map[mailKey]int
	other int // mails whose subject names no order
}

// mailKey is an order and what its mail announced (confirmed, cancelled,
// refunded).
type mailKey struct{ order, what string }

var orderSubject = regexp.MustCompile(`(?m)^Subject: Order (\S+) (\w+)`)

func newMailbox(port int) (*mailbox, error) {
	ln, err := listenLoopback(port)
	if err != nil {
		return nil, err
	}
	m := &mailbox{ln: ln, sent: map[mailKey]int{}}
	m.wg.Add(1)
	go m.serve()
	return m, nil
}

func (m *mailbox) Addr() string { return m.ln.Addr().String() }

func (m *mailbox) serve() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.session(c)
		}()
	}
}

// session speaks just enough SMTP for net/smtp.SendMail: no extensions, so
// no STARTTLS and no AUTH.
func (m *mailbox) session(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(s string) bool {
		_, err := w.WriteString(s + "\r\n")
		return err == nil && w.Flush() == nil
	}
	if !reply("220 chaos mailbox") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			reply("250 chaos")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), strings.HasPrefix(cmd, "RSET"), strings.HasPrefix(cmd, "NOOP"):
			reply("250 ok")
		case cmd == "DATA":
			reply("354 go ahead")
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				body.WriteString(l)
			}
			m.record(body.String())
			reply("250 queued")
		case cmd == "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

func (m *mailbox) record(msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := orderSubject.FindStringSubmatch(msg); s != nil {
		m.sent[mailKey{s[1], s[2]}]++
		return
	}
	m.other++
}

// Sent returns a copy of the counts.
func (m *mailbox) Sent() map[mailKey]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[mailKey]int, len(m.sent))
	for k, v := range m.sent {
		out[k] = v
	}
	return out
}

func (m *mailbox) Close() {
	m.ln.Close()
	m.wg.Wait()
}
