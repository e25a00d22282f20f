package render

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"golang.org/x/crypto/bcrypt"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// One broker user per service. Each service that talks to the broker
// (catalog.Service.UsesBroker; not the gateway) has its own user, named
// after it, whose permissions derive from its catalog row (see
// BrokerPermissions). Its credentials live in the Secret <p>-<service>-nats,
// which only that service's Deployment refers to:
//
//	nats-user           the user name: the service's name
//	nats-password       a generated password (48 letters, ~273 bits)
//	nats-password-hash  its bcrypt hash, for the broker
//
// The broker checks a password against its bcrypt hash, which nats.conf
// carries; the password itself never leaves the Secret and the service's
// env. Hashing is salted, so the hash is made once, when the password is,
// and kept beside it: render copies it and stays deterministic.
//
// Rotating a service's credentials is replacing (or deleting) its Secret:
// a missing password is generated, a hash that does not match the password
// is made anew, and the new hash rolls the broker (its config hash) while
// the new password rolls that service's pods (AnnotationAuthHash).

// SecretKeyNATSPasswordHash is the key of the bcrypt hash in a service's
// nats Secret; the user and password use SecretKeyNATSUser and
// SecretKeyNATSPassword, as <p>-auth does.
const SecretKeyNATSPasswordHash = "nats-password-hash"

// DefaultBrokerPasswordCost is bcrypt's work factor for the broker users.
// The passwords are random and long, far beyond guessing at any cost, so
// the cost only has to be one bcrypt accepts without complaint; the broker
// pays it at every connect and reconnect of every pod (all at once after a
// broker restart), which keeps it at the library's default rather than
// higher.
const DefaultBrokerPasswordCost = bcrypt.DefaultCost

// BrokerUserSecretName is the Secret holding service's broker credentials.
func BrokerUserSecretName(p *v1alpha1.Platform, service string) string {
	return ObjectName(p, service) + "-nats"
}

// BrokerUser is one service's broker credentials.
type BrokerUser struct {
	User, Password, PasswordHash string
}

// BrokerUsers are the broker users of a Platform, by service name.
type BrokerUsers map[string]BrokerUser

// BrokerUserFromSecret reads a service's nats Secret (nil: nothing); a key
// may be missing.
func BrokerUserFromSecret(s *corev1.Secret) BrokerUser {
	if s == nil {
		return BrokerUser{}
	}
	return BrokerUser{
		User:         string(s.Data[SecretKeyNATSUser]),
		Password:     string(s.Data[SecretKeyNATSPassword]),
		PasswordHash: string(s.Data[SecretKeyNATSPasswordHash]),
	}
}

// BrokerUsersReport says which services' credentials KeepBrokerUsers made.
type BrokerUsersReport struct {
	// Generated services had no password; Rehashed ones had a password
	// whose stored hash did not match it (a Secret replaced by hand).
	Generated, Rehashed []string
}

// BrokerUserKeeper keeps a Platform's broker users across reconciles. It
// remembers which hashes it has checked, so a reconcile pays bcrypt only
// for credentials that changed. The zero value is ready to use.
type BrokerUserKeeper struct {
	// Rand draws passwords; nil means crypto/rand.
	Rand io.Reader
	// Cost is the bcrypt cost of new hashes; 0 means
	// DefaultBrokerPasswordCost.
	Cost int

	checked sync.Map // fingerprint of password and hash → struct{}
}

// Keep returns one user per enabled service that uses the broker: the
// user named after the service, the password of have or a generated one,
// and the hash of have if it matches the password, else a new one.
// Services that are not enabled are left out, so their Secrets are pruned.
func (k *BrokerUserKeeper) Keep(p *v1alpha1.Platform, have BrokerUsers) (BrokerUsers, BrokerUsersReport, error) {
	var rep BrokerUsersReport
	out := BrokerUsers{}
	for _, s := range EnabledServices(p) {
		if !s.UsesBroker() {
			continue
		}
		u := have[s.Name]
		u.User = s.Name
		if u.Password == "" {
			pw, err := randomLetters(k.rand(), credentialLength)
			if err != nil {
				return nil, rep, fmt.Errorf("generating the broker password of %s: %w", s.Name, err)
			}
			u.Password, u.PasswordHash = pw, ""
			rep.Generated = append(rep.Generated, s.Name)
		}
		if !k.matches(u) {
			if u.PasswordHash != "" {
				rep.Rehashed = append(rep.Rehashed, s.Name)
			}
			h, err := bcrypt.GenerateFromPassword([]byte(u.Password), k.cost())
			if err != nil {
				return nil, rep, fmt.Errorf("hashing the broker password of %s: %w", s.Name, err)
			}
			u.PasswordHash = string(h)
			k.checked.Store(u.fingerprint(), struct{}{})
		}
		out[s.Name] = u
	}
	return out, rep, nil
}

func (k *BrokerUserKeeper) matches(u BrokerUser) bool {
	if u.PasswordHash == "" {
		return false
	}
	fp := u.fingerprint()
	if _, ok := k.checked.Load(fp); ok {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(u.Password)) != nil {
		return false
	}
	k.checked.Store(fp, struct{}{})
	return true
}

func (k *BrokerUserKeeper) rand() io.Reader {
	if k.Rand == nil {
		return rand.Reader
	}
	return k.Rand
}

func (k *BrokerUserKeeper) cost() int {
	if k.Cost == 0 {
		return DefaultBrokerPasswordCost
	}
	return k.Cost
}

// fingerprint identifies a password and hash pair without keeping either.
func (u BrokerUser) fingerprint() string {
	return fingerprint(u.Password, u.PasswordHash)
}

// hash is a short, irreversible fingerprint of what the service's pods
// read (user and password), for the annotation that rolls them.
func (u BrokerUser) hash() string { return fingerprint(u.User, u.Password) }

func fingerprint(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// validate refuses users the broker or the services cannot use. Generated
// ones always pass; a Secret written by hand might not.
func (us BrokerUsers) validate(p *v1alpha1.Platform, plans []ServicePlan) error {
	var errs []error
	for _, s := range plans {
		if !s.UsesBroker() {
			continue
		}
		u, ok := us[s.Name]
		secret := BrokerUserSecretName(p, s.Name)
		switch {
		case !ok || u.Password == "" || u.PasswordHash == "":
			errs = append(errs, fmt.Errorf("the broker user of %s is missing: the caller must keep the users with a BrokerUserKeeper", s.Name))
		case u.User != s.Name:
			errs = append(errs, fmt.Errorf("Secret %s, key %s: %q, want the service's name %q", secret, SecretKeyNATSUser, u.User, s.Name))
		case !natsCredential.MatchString(u.Password):
			errs = append(errs, fmt.Errorf("Secret %s, key %s must be at least 16 letters, digits or ._~- starting with a letter; delete the key to have one generated", secret, SecretKeyNATSPassword))
		default:
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				errs = append(errs, fmt.Errorf("Secret %s, key %s is not a bcrypt hash (%v); delete the key to have it made again", secret, SecretKeyNATSPasswordHash, err))
			}
		}
	}
	return errors.Join(errs...)
}

func brokerUserSecret(p *v1alpha1.Platform, svc string, u BrokerUser) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, BrokerUserSecretName(p, svc), svc),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			SecretKeyNATSUser:         []byte(u.User),
			SecretKeyNATSPassword:     []byte(u.Password),
			SecretKeyNATSPasswordHash: []byte(u.PasswordHash),
		},
	}
}

// brokerEnvOf wires a service to the broker with its own user; a service
// that does not use the broker gets nothing, not even the URL.
func brokerEnvOf(p *v1alpha1.Platform, svc catalog.Service) []corev1.EnvVar {
	if !svc.UsesBroker() {
		return nil
	}
	secret := BrokerUserSecretName(p, svc.Name)
	return []corev1.EnvVar{
		{Name: catalog.EnvNATSURL, Value: BrokerURL(p)},
		secretKeyEnv(catalog.EnvNATSUser, secret, SecretKeyNATSUser),
		secretKeyEnv(catalog.EnvNATSPassword, secret, SecretKeyNATSPassword),
	}
}
