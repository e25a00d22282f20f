package render

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	corev1 "k8s.io/api/core/v1"
)

// counter is a deterministic stand-in for crypto/rand.
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

func TestNewCredentials(t *testing.T) {
	tests := []struct {
		name   string
		reader io.Reader
	}{
		{"from crypto/rand", rand.Reader},
		{"from a deterministic reader, rejecting biased bytes", &counter{n: 200}},
		{"from a reader that returns one byte at a time", iotest.OneByteReader(&counter{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCredentials(tt.reader)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, s := range []string{c.NATSUser, c.NATSPassword} {
				if len(s) != 48 || strings.Trim(s, credentialAlphabet) != "" {
					t.Errorf("credential %q: want 48 letters", s)
				}
				if seen[s] {
					t.Errorf("credential %q drawn twice", s)
				}
				seen[s] = true
			}
			if err := c.validate(); err != nil {
				t.Errorf("generated credentials refused: %v", err)
			}
		})
	}
	t.Run("deterministic for the same input", func(t *testing.T) {
		a, _ := NewCredentials(&counter{})
		b, _ := NewCredentials(&counter{})
		if a != b {
			t.Error("same randomness, different credentials")
		}
	})
	t.Run("a failing reader is an error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := NewCredentials(iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Errorf("error %v, want %v", err, boom)
		}
		if _, err := NewCredentials(bytes.NewReader(make([]byte, 100))); err == nil {
			t.Error("a short reader gave credentials")
		}
	})
}

func TestCredentialsFromSecret(t *testing.T) {
	full := func() map[string][]byte {
		return map[string][]byte{"nats-user": []byte("u"), "nats-password": []byte("p"), "nats-system-user": []byte("su"), "nats-system-password": []byte("sp")}
	}
	tests := []struct {
		name   string
		secret *corev1.Secret
		ok     bool
	}{
		{"no Secret", nil, false},
		{"an empty Secret", &corev1.Secret{}, false},
		{"every key present", &corev1.Secret{Data: full()}, true},
		{"a key missing", func() *corev1.Secret { d := full(); delete(d, "nats-user"); return &corev1.Secret{Data: d} }(), false},
		{"the token key of older versions is ignored", func() *corev1.Secret { d := full(); d["auth-key"] = []byte("k"); return &corev1.Secret{Data: d} }(), true},
		{"a key empty", func() *corev1.Secret { d := full(); d["nats-password"] = nil; return &corev1.Secret{Data: d} }(), false},
		{"the system user missing (written by an older operator)", func() *corev1.Secret { d := full(); delete(d, "nats-system-user"); return &corev1.Secret{Data: d} }(), false},
		{"stringData is not read back (the server folds it into data)", &corev1.Secret{StringData: map[string]string{"nats-user": "u", "nats-password": "p"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := CredentialsFromSecret(tt.secret)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && c != (Credentials{NATSUser: "u", NATSPassword: "p", SystemUser: "su", SystemPassword: "sp"}) {
				t.Errorf("credentials %+v", c)
			}
			if !ok && c != (Credentials{}) {
				t.Errorf("partial credentials returned: %+v", c)
			}
		})
	}
	t.Run("an older Secret keeps its keys and gains the missing ones", func(t *testing.T) {
		fresh, err := NewCredentials(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got := fresh.WithCredentialsFrom(map[string][]byte{"nats-user": []byte("u"), "nats-password": []byte("p")})
		if got.NATSUser != "u" || got.NATSPassword != "p" || got.SystemUser != fresh.SystemUser || got.SystemPassword != fresh.SystemPassword {
			t.Errorf("got %+v, want the Secret's route credentials and fresh system ones", got)
		}
		if err := got.validate(); err == nil {
			t.Error("credentials of one letter validated")
		}
	})
	t.Run("round trip through the rendered Secret", func(t *testing.T) {
		c, ok := CredentialsFromSecret(authSecret(platform("shop"), testCredentials))
		if !ok || c != testCredentials {
			t.Errorf("got %+v, %v", c, ok)
		}
	})
}
