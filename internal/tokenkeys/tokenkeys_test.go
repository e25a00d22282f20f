package tokenkeys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func mustGenerate(t *testing.T) (string, string) {
	t.Helper()
	priv, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := EncodePrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := EncodePublic(Public(priv))
	if err != nil {
		t.Fatal(err)
	}
	return privPEM, pubPEM
}

func TestRoundTrip(t *testing.T) {
	privA, pubA := mustGenerate(t)
	_, pubB := mustGenerate(t)
	priv, err := ParsePrivate(privA)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParsePublic(pubA + pubB)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("parsed %d keys, want 2", len(keys))
	}
	if KeyID(keys[0]) != KeyID(Public(priv)) {
		t.Fatal("the first public key is not the private key's")
	}
	if KeyID(keys[0]) == KeyID(keys[1]) {
		t.Fatal("two keys share a kid")
	}
	if len(KeyID(keys[0])) != 16 {
		t.Fatalf("kid %q is not 16 characters", KeyID(keys[0]))
	}
}

func TestParseRefuses(t *testing.T) {
	priv, pub := mustGenerate(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}))
	ecPrivDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPriv := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPrivDER}))

	publics := []struct {
		name, text, want string
	}{
		{"nothing is not a key set", "", "no PEM block"},
		{"text that is not PEM is refused", "hello", "not a PEM block"},
		{"a private key is not a public key", priv, "want PUBLIC KEY"},
		{"an ECDSA key is not Ed25519", ecPub, "want Ed25519"},
		{"the same key twice is refused", pub + pub, "listed twice"},
		{"trailing garbage is refused", pub + "garbage", "key 2: not a PEM block"},
	}
	for _, tt := range publics {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePublic(tt.text); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	privates := []struct {
		name, text, want string
	}{
		{"nothing is not a key", "", "no PEM block"},
		{"a public key is not a private key", pub, "want PRIVATE KEY"},
		{"an ECDSA key is not Ed25519", ecPriv, "want Ed25519"},
		{"two private keys are refused", priv + priv, "more than one PEM block"},
	}
	for _, tt := range privates {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePrivate(tt.text); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzParsePublic(f *testing.F) {
	priv, _ := Generate()
	pub, _ := EncodePublic(Public(priv))
	f.Add(pub)
	f.Add(pub + pub)
	f.Add("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
	f.Fuzz(func(t *testing.T, text string) {
		keys, err := ParsePublic(text)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		again, err := EncodePublic(keys...)
		if err != nil {
			t.Fatal(err)
		}
		if round, err := ParsePublic(again); err != nil || len(round) != len(keys) {
			t.Fatalf("re-encoded keys do not parse back: %v", err)
		}
	})
}
