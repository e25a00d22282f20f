package render

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"

	corev1 "k8s.io/api/core/v1"
)

// Keys of the <p>-auth Secret.
const (
	SecretKeyNATSUser     = "nats-user"
	SecretKeyNATSPassword = "nats-password"
	// The broker's system user, in a clustered broker's system account:
	// the operator removes servers a scale-down took away from the
	// JetStream meta group as this user, which nothing else holds.
	SecretKeyNATSSystemUser     = "nats-system-user"
	SecretKeyNATSSystemPassword = "nats-system-password"
)

// Credentials are the broker cluster's route credentials, generated and
// kept in <p>-auth: the broker servers authenticate each other with them.
// No service holds them; each has a broker user of its own (BrokerUsers).
// The token keys and the first admin have Secrets of their own (see
// TokenKeys, Admin), so each is mounted only where it is needed.
type Credentials struct {
	NATSUser     string
	NATSPassword string
	// SystemUser and SystemPassword log in to a clustered broker's system
	// account (see natsConfig); only the operator uses them.
	SystemUser     string
	SystemPassword string
}

// credentialLength and credentialAlphabet give each credential
// 48·log2(52) ≈ 273 bits of entropy.
//
// Letters only, because nats-server parses the value of an env var it
// substitutes for $NATS_USER as a config token: a value that starts with a
// digit or '-' may become a number, a date or a syntax error, and one of
// "yes", "on"… a bool. The broker's route URLs also embed the credentials,
// so they must need no URL escaping.
const (
	credentialLength   = 48
	credentialAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// NewCredentials draws fresh credentials from r (crypto/rand.Reader in
// production; tests pass a deterministic reader).
func NewCredentials(r io.Reader) (Credentials, error) {
	var c Credentials
	for _, dst := range c.fields() {
		s, err := randomLetters(r, credentialLength)
		if err != nil {
			return Credentials{}, err
		}
		*dst = s
	}
	return c, nil
}

// randomLetters returns n letters drawn uniformly from credentialAlphabet,
// rejecting bytes that would bias the draw.
func randomLetters(r io.Reader, n int) (string, error) {
	const limit = 256 - 256%len(credentialAlphabet) // 208: a multiple of 52
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("reading randomness: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, credentialAlphabet[int(b)%len(credentialAlphabet)])
			}
		}
	}
	return string(out), nil
}

// CredentialsFromSecret reads credentials from a <p>-auth Secret. It
// reports false when s is nil or any key is missing or empty.
func CredentialsFromSecret(s *corev1.Secret) (Credentials, bool) {
	if s == nil {
		return Credentials{}, false
	}
	c := Credentials{
		NATSUser:       string(s.Data[SecretKeyNATSUser]),
		NATSPassword:   string(s.Data[SecretKeyNATSPassword]),
		SystemUser:     string(s.Data[SecretKeyNATSSystemUser]),
		SystemPassword: string(s.Data[SecretKeyNATSSystemPassword]),
	}
	for _, f := range c.fields() {
		if *f == "" {
			return Credentials{}, false
		}
	}
	return c, true
}

// fields are the credentials in the order of credentialKeys.
func (c *Credentials) fields() []*string {
	return []*string{&c.NATSUser, &c.NATSPassword, &c.SystemUser, &c.SystemPassword}
}

// credentialKeys are the <p>-auth keys of the credentials, in field order.
var credentialKeys = []string{SecretKeyNATSUser, SecretKeyNATSPassword, SecretKeyNATSSystemUser, SecretKeyNATSSystemPassword}

// WithCredentialsFrom returns c with every credential that have (a Secret's
// data) holds taken from it: an upgrade adds new keys without changing
// the ones pods already use.
func (c Credentials) WithCredentialsFrom(have map[string][]byte) Credentials {
	for i, f := range c.fields() {
		if v := have[credentialKeys[i]]; len(v) > 0 {
			*f = string(v)
		}
	}
	return c
}

// natsCredential is what the broker can take as a user or password: a token
// nats-server's config parser reads back as the same string (it starts with
// a letter, so it is never a number, date or variable; 16+ characters, so
// never a bool) that needs no escaping inside a route URL.
var natsCredential = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._~-]{15,}$`)

// validate refuses credentials the broker cannot use. Generated ones always
// pass; a hand-made Secret might not.
func (c Credentials) validate() error {
	if c.NATSUser == "" || c.NATSPassword == "" {
		return errors.New("credentials are empty: the caller must read them from the auth Secret or generate them with NewCredentials")
	}
	for i, f := range c.fields() {
		if *f == "" && i >= 2 {
			return fmt.Errorf("secret key %s is empty: the caller must read it from the auth Secret or generate it with NewCredentials", credentialKeys[i])
		}
		if !natsCredential.MatchString(*f) {
			return fmt.Errorf("secret key %s must be at least 16 letters, digits or ._~- starting with a letter", credentialKeys[i])
		}
	}
	return nil
}

// hash is a short, irreversible fingerprint of the credentials, for the
// pod-template annotation that rolls pods when they change.
func (c Credentials) hash() string {
	h := sha256.New()
	for _, s := range c.fields() {
		fmt.Fprintf(h, "%d:%s;", len(*s), *s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
