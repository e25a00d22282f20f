// Package tokenkeys is the key material of user tokens: Ed25519 key pairs,
// their PEM form and their key ids. The operator generates and publishes
// keys with it, `switchboard dev` keeps them in its data dir, and
// services/kit signs and verifies with what it parses.
//
// A private key is PEM "PRIVATE KEY" (PKCS #8); a verification key set is
// one or more PEM "PUBLIC KEY" blocks (PKIX) in one string. A key id (the
// JWT kid) is derived from the public key, never chosen: the same key has
// the same id everywhere, and a regenerated key a new one, so a token
// signed by a key that is gone is refused as unknown rather than as a bad
// signature.
package tokenkeys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Generate returns a fresh Ed25519 private key.
func Generate() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// KeyID is the kid of a public key: the first 16 characters of the
// unpadded base64url SHA-256 of its raw bytes (96 bits, plenty to tell one
// or two keys apart, short enough for a header).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:16]
}

// Public returns the public half of a private key.
func Public(priv ed25519.PrivateKey) ed25519.PublicKey {
	return priv.Public().(ed25519.PublicKey)
}

// EncodePrivate returns priv as a PEM "PRIVATE KEY" block.
func EncodePrivate(priv ed25519.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// EncodePublic returns the keys as consecutive PEM "PUBLIC KEY" blocks.
func EncodePublic(keys ...ed25519.PublicKey) (string, error) {
	var b bytes.Buffer
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", err
		}
		if err := pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: der}); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// ParsePrivate reads one PEM "PRIVATE KEY" block holding an Ed25519 key.
func ParsePrivate(text string) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode([]byte(strings.TrimSpace(text)))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY (PKCS #8)", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block: want exactly one private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is a %T, want Ed25519", k)
	}
	return priv, nil
}

// ParsePublic reads one or more PEM "PUBLIC KEY" blocks, each an Ed25519
// key, in order; anything else in text, or the same key twice, is an error.
func ParsePublic(text string) ([]ed25519.PublicKey, error) {
	rest := []byte(strings.TrimSpace(text))
	var keys []ed25519.PublicKey
	seen := map[string]bool{}
	for len(bytes.TrimSpace(rest)) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("key %d: not a PEM block", len(keys)+1)
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("key %d: PEM block is %q, want PUBLIC KEY", len(keys)+1, block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(keys)+1, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key %d is a %T, want Ed25519", len(keys)+1, k)
		}
		id := KeyID(pub)
		if seen[id] {
			return nil, fmt.Errorf("key %d: key %s is listed twice", len(keys)+1, id)
		}
		seen[id] = true
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block")
	}
	return keys, nil
}
