package local

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-dev/switchboard/internal/tokenkeys"
)

// Files beside the broker's store in a data dir. They hold what must
// survive a restart for the platform to be the same one: the key that
// signed the tokens handed out, and the first admin's password.
const (
	signingKeyFile    = "token-signing-key.pem"
	adminPasswordFile = "admin-password"
)

// secrets are a local platform's token-signing key and first admin's
// password.
type secrets struct {
	SigningKey    ed25519.PrivateKey
	AdminPassword string
}

// loadSecrets reads the secrets kept in dir, generating and writing (mode
// 0600) those missing; with no dir they are fresh and die with the process.
func loadSecrets(dir string) (secrets, error) {
	var s secrets
	keyPEM, err := keep(dir, signingKeyFile, func() (string, error) {
		k, err := tokenkeys.Generate()
		if err != nil {
			return "", err
		}
		return tokenkeys.EncodePrivate(k)
	})
	if err != nil {
		return s, err
	}
	if s.SigningKey, err = tokenkeys.ParsePrivate(keyPEM); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(dir, signingKeyFile), err)
	}
	s.AdminPassword, err = keep(dir, adminPasswordFile, func() (string, error) { return random(12), nil })
	s.AdminPassword = strings.TrimSpace(s.AdminPassword)
	return s, err
}

// keep returns the content of dir/name, first writing what gen makes when
// the file does not exist (or dir is "").
func keep(dir, name string, gen func() (string, error)) (string, error) {
	if dir == "" {
		return gen()
	}
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		return string(b), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
		return "", err
	}
	return v, nil
}
