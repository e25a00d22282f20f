package render

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// User tokens are signed by the services whose catalog row issues them
// (user, account) with a private key only they mount, and verified by every
// service with the public keys, which are not secret:
//
//   - <p>-token-signing, a Secret: one PEM private key per key name of
//     spec.auth, under that name. Only the issuers' Deployments refer to it,
//     each for the key spec.auth.signingKey names.
//   - <p>-token-keys, a ConfigMap: the public keys of every name in
//     spec.auth.verificationKeys, under TokenKeysKey.
//   - <p>-admin, a Secret: the first admin's email and password, which the
//     issuers ensure at start-up.
//
// Env vars are read once, so pod-template annotations carry the key ids
// (fingerprints of public keys, not secret) and a hash of the admin's
// credentials: a rotation step rolls exactly the pods it concerns.

// Keys of the <p>-admin Secret and the <p>-token-keys ConfigMap.
const (
	SecretKeyAdminEmail    = "email"
	SecretKeyAdminPassword = "password"
	TokenKeysKey           = "keys.pem"
)

// DefaultSigningKey names the first signing key when spec.auth names none.
const DefaultSigningKey = "v1"

// DefaultAdminEmail is the first admin's email unless <p>-admin says
// otherwise.
const DefaultAdminEmail = "admin@switchboard.local"

// Components of the token objects.
const (
	ComponentTokens = "tokens"
	ComponentAdmin  = "admin"
)

// More pod template annotations (see AnnotationAuthHash).
const (
	// AnnotationTokenKeys lists the kids of TOKEN_KEYS.
	AnnotationTokenKeys = "platform.switchboard.dev/token-keys"
	// AnnotationSigningKey is the kid of TOKEN_SIGNING_KEY.
	AnnotationSigningKey = "platform.switchboard.dev/token-signing-key"
	// AnnotationAdminHash is a hash of ADMIN_EMAIL and ADMIN_PASSWORD.
	AnnotationAdminHash = "platform.switchboard.dev/admin-hash"
)

// TokenSigningSecretName is the Secret of the private keys.
func TokenSigningSecretName(p *v1alpha1.Platform) string { return p.Name + "-token-signing" }

// TokenKeysConfigMapName is the ConfigMap of the public keys.
func TokenKeysConfigMapName(p *v1alpha1.Platform) string { return p.Name + "-token-keys" }

// AdminSecretName is the Secret of the first admin's credentials.
func AdminSecretName(p *v1alpha1.Platform) string { return p.Name + "-admin" }

// SigningKeyName is the key that signs: spec.auth.signingKey, or
// DefaultSigningKey.
func SigningKeyName(p *v1alpha1.Platform) string {
	if k := p.Spec.Auth.SigningKey; k != "" {
		return k
	}
	return DefaultSigningKey
}

// KeyNames are the keys every service accepts, sorted:
// spec.auth.verificationKeys, or the signing key alone. They are also the
// keys the operator keeps; any other is dropped. The order does not follow
// the signing key, so switching it changes nothing the verifiers read.
func KeyNames(p *v1alpha1.Platform) []string {
	names := slices.Clone(p.Spec.Auth.VerificationKeys)
	if !slices.Contains(names, SigningKeyName(p)) {
		names = append(names, SigningKeyName(p))
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TokenTTL is spec.auth.tokenTTL, or the catalog's default.
func TokenTTL(p *v1alpha1.Platform) time.Duration {
	if d := p.Spec.Auth.TokenTTL; d != nil {
		return d.Duration
	}
	return catalog.DefaultTokenTTL
}

// TokenKeys are a Platform's token-signing keys as PEM private keys, by
// name: what <p>-token-signing holds.
type TokenKeys map[string]string

// TokenKeysFromSecret reads the keys of a <p>-token-signing Secret (nil:
// none).
func TokenKeysFromSecret(s *corev1.Secret) TokenKeys {
	keys := TokenKeys{}
	if s == nil {
		return keys
	}
	for name, v := range s.Data {
		if len(v) > 0 {
			keys[name] = string(v)
		}
	}
	return keys
}

// KeepTokenKeys returns one key per name of KeyNames(p): the one in have
// if there is one, else a fresh one. Keys p no longer names are left out,
// so the Secret drops them: a name that comes back is a new key.
func KeepTokenKeys(p *v1alpha1.Platform, have TokenKeys) (TokenKeys, error) {
	out := TokenKeys{}
	for _, name := range KeyNames(p) {
		if k, ok := have[name]; ok {
			out[name] = k
			continue
		}
		priv, err := tokenkeys.Generate()
		if err != nil {
			return nil, fmt.Errorf("generating token key %s: %w", name, err)
		}
		if out[name], err = tokenkeys.EncodePrivate(priv); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tokenKeySet is what the services are given: the public keys of every
// accepted name, in KeyNames order, and the kid of the signing one.
type tokenKeySet struct {
	publicPEM  string
	kids       []string
	signingKid string
}

// keySet parses the keys KeyNames(p) names. A key missing or not an
// Ed25519 private key is an error naming what to do.
func (k TokenKeys) keySet(p *v1alpha1.Platform) (tokenKeySet, error) {
	var set tokenKeySet
	var pubs []ed25519.PublicKey
	signing := SigningKeyName(p)
	for _, name := range KeyNames(p) {
		text, ok := k[name]
		if !ok {
			return set, fmt.Errorf("token key %q is missing: the caller must keep the keys of %s with KeepTokenKeys", name, TokenSigningSecretName(p))
		}
		priv, err := tokenkeys.ParsePrivate(text)
		if err != nil {
			return set, fmt.Errorf("Secret %s, key %s: %v; delete the key to have a new one generated", TokenSigningSecretName(p), name, err)
		}
		pub := tokenkeys.Public(priv)
		pubs = append(pubs, pub)
		set.kids = append(set.kids, tokenkeys.KeyID(pub))
		if name == signing {
			set.signingKid = tokenkeys.KeyID(pub)
		}
	}
	var err error
	set.publicPEM, err = tokenkeys.EncodePublic(pubs...)
	return set, err
}

// Admin is the first admin's credentials: what <p>-admin holds.
type Admin struct {
	Email, Password string
}

// adminPasswordLength letters of credentialAlphabet: about 137 bits.
const adminPasswordLength = 24

// AdminFromSecret reads a <p>-admin Secret (nil: nothing); a key may be
// missing.
func AdminFromSecret(s *corev1.Secret) Admin {
	if s == nil {
		return Admin{}
	}
	return Admin{Email: string(s.Data[SecretKeyAdminEmail]), Password: string(s.Data[SecretKeyAdminPassword])}
}

// KeepAdmin fills what have lacks: DefaultAdminEmail, and a password drawn
// from r. What a person wrote into the Secret is kept.
func KeepAdmin(have Admin, r io.Reader) (Admin, error) {
	if have.Email == "" {
		have.Email = DefaultAdminEmail
	}
	if have.Password == "" {
		pw, err := randomLetters(r, adminPasswordLength)
		if err != nil {
			return Admin{}, err
		}
		have.Password = pw
	}
	return have, nil
}

// validate refuses what the issuing services would refuse at start-up.
func (a Admin) validate(p *v1alpha1.Platform) error {
	addr, err := mail.ParseAddress(a.Email)
	switch {
	case a.Email == "" || a.Password == "":
		return errors.New("the first admin's credentials are empty: the caller must keep them with KeepAdmin")
	case err != nil || addr.Address != a.Email:
		return fmt.Errorf("Secret %s, key %s: %q is not a plain address like admin@example.com", AdminSecretName(p), SecretKeyAdminEmail, a.Email)
	case len(a.Password) < 8 || len(a.Password) > 72:
		return fmt.Errorf("Secret %s, key %s: the password must be 8 to 72 bytes", AdminSecretName(p), SecretKeyAdminPassword)
	}
	return nil
}

func (a Admin) hash() string {
	h := sha256.New()
	for _, s := range []string{a.Email, a.Password} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func tokenSigningSecret(p *v1alpha1.Platform, keys TokenKeys) *corev1.Secret {
	data := map[string][]byte{}
	for _, name := range KeyNames(p) {
		data[name] = []byte(keys[name])
	}
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, TokenSigningSecretName(p), ComponentTokens),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

func tokenKeysConfigMap(p *v1alpha1.Platform, set tokenKeySet) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   typeMeta("v1", "ConfigMap"),
		ObjectMeta: objectMeta(p, TokenKeysConfigMapName(p), ComponentTokens),
		Data:       map[string]string{TokenKeysKey: set.publicPEM},
	}
}

func adminSecret(p *v1alpha1.Platform, a Admin) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, AdminSecretName(p), ComponentAdmin),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			SecretKeyAdminEmail:    []byte(a.Email),
			SecretKeyAdminPassword: []byte(a.Password),
		},
	}
}

// tokenEnv is what a service needs of the tokens: public keys to any that
// verifies; the signing key, the lifetime and the first admin to issuers.
func tokenEnv(p *v1alpha1.Platform, svc catalog.Service) []corev1.EnvVar {
	var env []corev1.EnvVar
	if svc.VerifiesTokens() {
		env = append(env, corev1.EnvVar{Name: catalog.EnvTokenKeys, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: TokenKeysConfigMapName(p)},
			Key:                  TokenKeysKey,
		}}})
	}
	if svc.IssuesTokens() {
		env = append(env,
			secretKeyEnv(catalog.EnvTokenSigningKey, TokenSigningSecretName(p), SigningKeyName(p)),
			corev1.EnvVar{Name: catalog.EnvTokenTTL, Value: TokenTTL(p).String()},
			secretKeyEnv(catalog.EnvAdminEmail, AdminSecretName(p), SecretKeyAdminEmail),
			secretKeyEnv(catalog.EnvAdminPassword, AdminSecretName(p), SecretKeyAdminPassword),
		)
	}
	return env
}

// tokenAnnotations roll a service's pods when the keys or admin it reads
// change.
func tokenAnnotations(svc catalog.Service, set tokenKeySet, a Admin) map[string]string {
	out := map[string]string{}
	if svc.VerifiesTokens() {
		out[AnnotationTokenKeys] = strings.Join(set.kids, ",")
	}
	if svc.IssuesTokens() {
		out[AnnotationSigningKey] = set.signingKid
		out[AnnotationAdminHash] = a.hash()
	}
	return out
}
