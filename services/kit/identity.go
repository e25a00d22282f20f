package kit

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/internal/pki"
)

// Service identity files, read from TLS_DIR: a kubernetes.io/tls Secret's
// tls.crt and tls.key plus the Platform CA's ca.crt.
const (
	EnvTLSDir   = "TLS_DIR"
	TLSCertFile = "tls.crt"
	TLSKeyFile  = "tls.key"
	TLSCAFile   = "ca.crt"
)

// DefaultReloadEvery is how often, at most, an Identity loaded from files
// looks at them again. Kubelet refreshes a Secret volume about once a
// minute, and a certificate is renewed days before it expires, so a few
// seconds cost nothing and keep the handshake path to a clock read.
const DefaultReloadEvery = 2 * time.Second

// SPIFFEID is a service identity; see pki.SPIFFEID.
type SPIFFEID = pki.SPIFFEID

// Identity is a service's certificate, key and trusted CAs, replaced
// without a restart when the operator renews them.
//
// Loaded from a directory, it re-reads the files when they change, checking
// at most every reloadEvery and only when a handshake asks for them, so an
// idle service does no work. Kubelet updates a Secret volume by writing a
// new timestamped directory and swapping the ..data symlink to it; tls.crt
// and friends are symlinks through ..data, so the files change together,
// and a change is seen in the ..data target, or in a file's identity,
// modification time or size. A set that does not load (a key that does not
// match its certificate, a certificate its CA did not sign) is refused and
// the previous one stays in use, so a writer that is not atomic cannot
// break the service mid-way; the next check tries again.
//
// Built from memory (`switchboard dev`, tests), it changes only through Set.
type Identity struct {
	cur atomic.Pointer[identityState]

	dir         string
	reloadEvery time.Duration
	now         func() time.Time
	nextCheck   atomic.Int64 // unix nanoseconds
	reloading   sync.Mutex
	stamp       stamp // guarded by reloading
	lastErr     atomic.Pointer[error]
}

type identityState struct {
	cert  *tls.Certificate
	id    SPIFFEID
	roots *x509.CertPool
}

// NewIdentity builds an in-memory identity from PEM: the service's
// certificate (a chain may follow), its key, and the CA bundle it trusts.
func NewIdentity(certPEM, keyPEM, caPEM []byte) (*Identity, error) {
	st, err := loadState(certPEM, keyPEM, caPEM)
	if err != nil {
		return nil, err
	}
	ident := &Identity{now: time.Now}
	ident.cur.Store(st)
	return ident, nil
}

// LoadIdentity reads tls.crt, tls.key and ca.crt from dir and re-reads them
// when they change, looking at most every reloadEvery (DefaultReloadEvery
// when not positive).
func LoadIdentity(dir string, reloadEvery time.Duration) (*Identity, error) {
	if reloadEvery <= 0 {
		reloadEvery = DefaultReloadEvery
	}
	ident := &Identity{dir: dir, reloadEvery: reloadEvery, now: time.Now}
	if _, err := ident.Reload(); err != nil {
		return nil, err
	}
	return ident, nil
}

// IdentityFromEnv loads the identity mounted at TLS_DIR.
func IdentityFromEnv(env Getenv) (*Identity, error) {
	dir := strings.TrimSpace(env(EnvTLSDir))
	if dir == "" {
		return nil, fmt.Errorf("%s is required", EnvTLSDir)
	}
	ident, err := LoadIdentity(dir, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvTLSDir, err)
	}
	return ident, nil
}

// Set replaces an identity's material at once; every handshake after it
// uses the new certificate and CAs. It is how `switchboard dev` renews.
func (i *Identity) Set(certPEM, keyPEM, caPEM []byte) error {
	st, err := loadState(certPEM, keyPEM, caPEM)
	if err != nil {
		return err
	}
	i.cur.Store(st)
	return nil
}

// Reload looks at the files now, whatever the time since the last look, and
// reports whether it loaded a new set. An in-memory identity never changes
// here.
func (i *Identity) Reload() (bool, error) {
	if i.dir == "" {
		return false, nil
	}
	i.reloading.Lock()
	defer i.reloading.Unlock()
	return i.reloadLocked()
}

func (i *Identity) reloadLocked() (bool, error) {
	i.nextCheck.Store(i.now().Add(i.reloadEvery).UnixNano())
	s, err := readStamp(i.dir)
	if err == nil && i.cur.Load() != nil && s.equal(i.stamp) {
		return false, nil
	}
	if err == nil {
		var st *identityState
		if st, err = loadFiles(i.dir); err == nil {
			i.cur.Store(st)
			i.stamp = s
			i.lastErr.Store(nil)
			return true, nil
		}
	}
	i.lastErr.Store(&err)
	return false, err
}

// maybeReload is the handshake path: a clock read, and a look at the files
// when reloadEvery has passed. One goroutine looks; the others go on with
// the current set.
func (i *Identity) maybeReload() {
	if i.dir == "" || i.now().UnixNano() < i.nextCheck.Load() || !i.reloading.TryLock() {
		return
	}
	defer i.reloading.Unlock()
	if i.now().UnixNano() < i.nextCheck.Load() {
		return
	}
	_, _ = i.reloadLocked() // the error is kept for LastReloadError
}

// LastReloadError is why the last look at the files did not load them, nil
// when it did or found nothing new.
func (i *Identity) LastReloadError() error {
	if p := i.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (i *Identity) state() *identityState {
	i.maybeReload()
	return i.cur.Load()
}

// ID is the SPIFFE ID the current certificate names.
func (i *Identity) ID() SPIFFEID { return i.state().id }

// Certificate is the current certificate and key; its Leaf is parsed.
func (i *Identity) Certificate() *tls.Certificate { return i.state().cert }

// Roots is the current pool of trusted CAs.
func (i *Identity) Roots() *x509.CertPool { return i.state().roots }

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (i *Identity) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return i.Certificate(), nil
}

// GetClientCertificate presents the current certificate when a server asks
// for one (tls.Config.GetClientCertificate).
func (i *Identity) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return i.Certificate(), nil
}

// loadState parses and checks one set: the pair matches, the certificate
// names a SPIFFE ID and chains to the bundle for both server and client
// use, now.
func loadState(certPEM, keyPEM, caPEM []byte) (*identityState, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	id, err := pki.SPIFFEIDFromCert(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	roots, err := pki.CertPoolFromPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", TLSCAFile, err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		inter.AddCert(c)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return nil, fmt.Errorf("identity: the certificate of %s does not verify against %s: %w", id, TLSCAFile, err)
		}
	}
	return &identityState{cert: &cert, id: id, roots: roots}, nil
}

func loadFiles(dir string) (*identityState, error) {
	var b [3][]byte
	for n, name := range []string{TLSCertFile, TLSKeyFile, TLSCAFile} {
		var err error
		if b[n], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
	}
	return loadState(b[0], b[1], b[2])
}

// stamp is what tells that the files changed without reading them.
type stamp struct {
	data  string // target of the ..data symlink kubelet swaps, "" when none
	files [3]os.FileInfo
}

func readStamp(dir string) (stamp, error) {
	var s stamp
	if t, err := os.Readlink(filepath.Join(dir, "..data")); err == nil {
		s.data = t
	}
	for n, name := range []string{TLSCertFile, TLSKeyFile, TLSCAFile} {
		fi, err := os.Stat(filepath.Join(dir, name)) // through the symlinks
		if err != nil {
			return stamp{}, fmt.Errorf("identity: %w", err)
		}
		s.files[n] = fi
	}
	return s, nil
}

func (s stamp) equal(o stamp) bool {
	if s.data != o.data {
		return false
	}
	for n := range s.files {
		a, b := s.files[n], o.files[n]
		if a == nil || b == nil || !os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() {
			return false
		}
	}
	return true
}
