package kit_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// exchange runs one TLS connection over loopback, one byte each way, and
// returns what each side saw: the server's error and the peer it verified,
// and the client's error (in TLS 1.3 a client learns that the server
// refused its certificate on its first read, not from Handshake).
func exchange(t *testing.T, server, client *tls.Config) (srvErr error, srvPeer kit.SPIFFEID, cliErr error) {
	t.Helper()
	srvErr, srvPeer, cliErr, _ = exchangeState(t, server, client)
	return srvErr, srvPeer, cliErr
}

// exchangeState is exchange, with whether the client resumed a session.
func exchangeState(t *testing.T, server, client *tls.Config) (srvErr error, srvPeer kit.SPIFFEID, cliErr error, resumed bool) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err  error
		peer kit.SPIFFEID
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a hang fails the test instead of blocking it
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		peer, err := kit.PeerID(tc.ConnectionState())
		if err != nil {
			done <- result{err: err}
			return
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(tc, b); err != nil {
			done <- result{err: err, peer: peer}
			return
		}
		_, err = tc.Write(b)
		done <- result{err: err, peer: peer}
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err = conn.Write([]byte{'x'}); err == nil {
			_, err = io.ReadFull(conn, make([]byte, 1))
		}
		resumed = conn.ConnectionState().DidResume
		conn.Close()
	}
	r := <-done
	return r.err, r.peer, err, resumed
}

func TestMutualTLS(t *testing.T) {
	shop := kittest.NewPKI(t)
	intruder := kittest.NewPKI(t) // another CA naming the same identities
	blog := &kittest.PKI{CA: shop.CA, Base: shop.Base}
	blog.Base.Platform = "blog" // the same CA, another platform's names

	payment := shop.Identity(t, "payment")
	serverCfg := kit.ServerTLSConfig(payment, kit.AuthorizeServices(payment.ID(), "order"))
	to := func(ident *kit.Identity, want kit.SPIFFEID) *tls.Config {
		return kit.ClientTLSConfig(ident, kit.AuthorizeID(want))
	}
	// An intruder's client that trusts the platform's CA, so that it is
	// the server that decides, and presents a certificate of its own CA.
	il := intruder.Leaf(t, "order")
	intruderOrder, err := kit.NewIdentity(il.CertPEM, il.KeyPEM, slices.Concat(intruder.CA.CertPEM, shop.CA.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	noCert := to(shop.Identity(t, "order"), shop.ID("payment"))
	noCert.GetClientCertificate = nil

	for name, tc := range map[string]struct {
		server, client *tls.Config
		wantServerErr  error  // errors.Is on the server's error; nil means success
		serverSays     string // or a substring of it
		wantClientErr  error
	}{
		"a listed caller reaches the server, and each side learns the other's identity": {
			server: serverCfg, client: to(shop.Identity(t, "order"), shop.ID("payment")),
		},
		"a caller with a certificate of another CA is refused": {
			server: serverCfg, client: to(intruderOrder, shop.ID("payment")),
			wantServerErr: kit.ErrNoPeerIdentity,
		},
		"a caller without a certificate is refused": {
			server: serverCfg, client: noCert, serverSays: "certificate",
		},
		"a caller the server does not list is refused": {
			server: serverCfg, client: to(shop.Identity(t, "notification"), shop.ID("payment")),
			wantServerErr: kit.ErrPeerNotAllowed,
		},
		"a listed service of another platform under the same CA is refused": {
			server: serverCfg, client: to(blog.Identity(t, "order"), shop.ID("payment")),
			wantServerErr: kit.ErrPeerNotAllowed,
		},
		"a client refuses a server that is not the service it dialled": {
			server: kit.ServerTLSConfig(shop.Identity(t, "notification"), kit.AuthorizeAny()),
			client: to(shop.Identity(t, "order"), shop.ID("payment")), wantClientErr: kit.ErrPeerNotAllowed,
		},
		"a client refuses a server of another CA, whatever it claims to be": {
			server: kit.ServerTLSConfig(intruder.Identity(t, "payment"), kit.AuthorizeAny()),
			client: to(shop.Identity(t, "order"), shop.ID("payment")), wantClientErr: kit.ErrNoPeerIdentity,
		},
	} {
		t.Run(name, func(t *testing.T) {
			srvErr, peer, cliErr := exchange(t, tc.server, tc.client)
			switch {
			case tc.wantClientErr != nil:
				if !errors.Is(cliErr, tc.wantClientErr) || srvErr == nil {
					t.Fatalf("client error %v, server error %v; want the client to refuse with %v", cliErr, srvErr, tc.wantClientErr)
				}
			case tc.wantServerErr != nil || tc.serverSays != "":
				if cliErr == nil || srvErr == nil {
					t.Fatalf("client error %v, server error %v; want both to fail", cliErr, srvErr)
				}
				if tc.wantServerErr != nil && !errors.Is(srvErr, tc.wantServerErr) {
					t.Fatalf("server error %v; want %v", srvErr, tc.wantServerErr)
				}
				if !strings.Contains(srvErr.Error(), tc.serverSays) {
					t.Fatalf("server error %v; want it to mention %q", srvErr, tc.serverSays)
				}
			default:
				if srvErr != nil || cliErr != nil {
					t.Fatalf("server error %v, client error %v", srvErr, cliErr)
				}
				if peer != shop.ID("order") {
					t.Fatalf("the server saw %v, want %v", peer, shop.ID("order"))
				}
			}
		})
	}
}

func TestTLSVersionIsOnePointThree(t *testing.T) {
	shop := kittest.NewPKI(t)
	old := kit.ClientTLSConfig(shop.Identity(t, "order"), kit.AuthorizeAny())
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	srvErr, _, cliErr := exchange(t, kit.ServerTLSConfig(shop.Identity(t, "payment"), kit.AuthorizeAny()), old)
	if srvErr == nil || cliErr == nil {
		t.Fatalf("a TLS 1.2 client was served: server %v, client %v", srvErr, cliErr)
	}
}

func TestIdentityRotation(t *testing.T) {
	before, after := kittest.NewPKI(t), kittest.NewPKI(t) // the CA is replaced, not just the leaf
	dir := t.TempDir()
	before.WriteIdentityDir(t, dir, "payment")
	payment, err := kit.LoadIdentity(dir, time.Nanosecond) // look at the files on every handshake
	if err != nil {
		t.Fatal(err)
	}
	server := kit.ServerTLSConfig(payment, kit.AuthorizeServices(payment.ID(), "order"))
	call := func(p *kittest.PKI) error {
		srvErr, _, cliErr := exchange(t, server, kit.ClientTLSConfig(p.Identity(t, "order"), kit.AuthorizeID(p.ID("payment"))))
		return errors.Join(srvErr, cliErr)
	}
	if err := call(before); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	first := payment.Certificate()

	after.WriteIdentityDir(t, dir, "payment") // kubelet swaps ..data

	if err := call(after); err != nil {
		t.Fatalf("after rotation, a caller of the new CA: %v", err)
	}
	if err := call(before); err == nil {
		t.Fatal("after rotation, a caller of the replaced CA was still admitted")
	}
	if payment.Certificate() == first || payment.LastReloadError() != nil {
		t.Fatalf("the identity did not move to the new certificate (last reload error %v)", payment.LastReloadError())
	}
	if changed, err := payment.Reload(); changed || err != nil {
		t.Fatalf("Reload with nothing new = %v, %v; want no change", changed, err)
	}
}

func TestResumedSessionsAreVerifiedAgain(t *testing.T) {
	// A session ticket must not carry a caller past a replaced CA.
	before, after := kittest.NewPKI(t), kittest.NewPKI(t)
	dir := t.TempDir()
	before.WriteIdentityDir(t, dir, "payment")
	payment, err := kit.LoadIdentity(dir, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	server := kit.ServerTLSConfig(payment, kit.AuthorizeServices(payment.ID(), "order"))
	client := kit.ClientTLSConfig(before.Identity(t, "order"), kit.AuthorizeID(before.ID("payment")))
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i, wantResumed := range []bool{false, true} {
		srvErr, _, cliErr, resumed := exchangeState(t, server, client)
		if srvErr != nil || cliErr != nil || resumed != wantResumed {
			t.Fatalf("connection %d: server %v, client %v, resumed %v; want resumed %v", i, srvErr, cliErr, resumed, wantResumed)
		}
	}
	after.WriteIdentityDir(t, dir, "payment")
	if srvErr, _, cliErr, _ := exchangeState(t, server, client); srvErr == nil || cliErr == nil {
		t.Fatalf("a caller of the replaced CA resumed its session: server %v, client %v", srvErr, cliErr)
	}
}

func TestIdentityKeepsAWorkingSetWhenTheNewOneIsBroken(t *testing.T) {
	shop, other := kittest.NewPKI(t), kittest.NewPKI(t)
	dir := t.TempDir()
	shop.WriteIdentityDir(t, dir, "payment")
	payment, err := kit.LoadIdentity(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	good := payment.Certificate()
	ca := other.CA.CertPEM
	for name, files := range map[string]map[string][]byte{
		"a key of another certificate": {kit.TLSCertFile: shop.Leaf(t, "payment").CertPEM, kit.TLSKeyFile: shop.Leaf(t, "payment").KeyPEM, kit.TLSCAFile: shop.CA.CertPEM},
		"no key":                       {kit.TLSCertFile: shop.Leaf(t, "payment").CertPEM, kit.TLSKeyFile: nil, kit.TLSCAFile: shop.CA.CertPEM},
		"a certificate its CA did not sign": func() map[string][]byte {
			l := shop.Leaf(t, "payment")
			return map[string][]byte{kit.TLSCertFile: l.CertPEM, kit.TLSKeyFile: l.KeyPEM, kit.TLSCAFile: ca}
		}(),
		"a certificate without a SPIFFE ID": {kit.TLSCertFile: shop.CA.CertPEM, kit.TLSKeyFile: shop.CA.KeyPEM, kit.TLSCAFile: shop.CA.CertPEM},
	} {
		t.Run(name, func(t *testing.T) {
			if err := kittest.WriteSecretDir(dir, files); err != nil {
				t.Fatal(err)
			}
			changed, err := payment.Reload()
			if changed || err == nil || payment.LastReloadError() == nil {
				t.Fatalf("Reload = %v, %v; want the broken set refused", changed, err)
			}
			if payment.Certificate() != good {
				t.Fatal("the working certificate was dropped")
			}
		})
	}
	shop.WriteIdentityDir(t, dir, "payment")
	if changed, err := payment.Reload(); !changed || err != nil || payment.LastReloadError() != nil {
		t.Fatalf("a good set after broken ones: Reload = %v, %v", changed, err)
	}
}

func TestIdentityReloadsFilesReplacedInPlace(t *testing.T) {
	// Not every mount is a Secret volume: files renamed over the old ones
	// (as cp --remove-destination or an editor's save would) are seen too.
	shop := kittest.NewPKI(t)
	dir := t.TempDir()
	write := func(service string) {
		l := shop.Leaf(t, service)
		for name, b := range map[string][]byte{kit.TLSCertFile: l.CertPEM, kit.TLSKeyFile: l.KeyPEM, kit.TLSCAFile: shop.CA.CertPEM} {
			tmp := filepath.Join(dir, name+".tmp")
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("payment")
	ident, err := kit.LoadIdentity(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first := ident.Certificate()
	write("payment")
	if changed, err := ident.Reload(); !changed || err != nil || ident.Certificate() == first {
		t.Fatalf("Reload = %v, %v; want the new files loaded", changed, err)
	}
}

func TestLoadIdentityRefuses(t *testing.T) {
	if _, err := kit.LoadIdentity(t.TempDir(), 0); err == nil || !strings.Contains(err.Error(), kit.TLSCertFile) {
		t.Errorf("an empty directory: %v", err)
	}
	if _, err := kit.IdentityFromEnv(kit.MapEnv(nil)); err == nil || !strings.Contains(err.Error(), kit.EnvTLSDir) {
		t.Errorf("no TLS_DIR: %v", err)
	}
	shop := kittest.NewPKI(t)
	dir := t.TempDir()
	shop.WriteIdentityDir(t, dir, "order")
	ident, err := kit.IdentityFromEnv(kit.MapEnv(map[string]string{kit.EnvTLSDir: dir}))
	if err != nil || ident.ID() != shop.ID("order") {
		t.Fatalf("IdentityFromEnv = %v, %v", ident, err)
	}
	l := shop.Leaf(t, "order")
	if _, err := kit.NewIdentity(l.CertPEM, l.KeyPEM, kittest.NewPKI(t).CA.CertPEM); err == nil {
		t.Error("an identity its own CA bundle does not vouch for was accepted")
	}
	if err := ident.Set(l.CertPEM, shop.CA.KeyPEM, shop.CA.CertPEM); err == nil {
		t.Error("Set accepted a key of another certificate")
	}
}

func TestAuthorizers(t *testing.T) {
	shop := kittest.NewPKI(t)
	order, payment := shop.ID("order"), shop.ID("payment")
	elsewhere := order
	elsewhere.Namespace = "prod"
	for name, tc := range map[string]struct {
		a     kit.Authorizer
		peer  kit.SPIFFEID
		allow bool
	}{
		"AuthorizeID admits its identity":                      {a: kit.AuthorizeID(order), peer: order, allow: true},
		"AuthorizeID refuses another":                          {a: kit.AuthorizeID(order), peer: payment},
		"AuthorizeOneOf admits a listed identity":              {a: kit.AuthorizeOneOf(payment, order), peer: order, allow: true},
		"AuthorizeOneOf refuses an unlisted one":               {a: kit.AuthorizeOneOf(payment), peer: order},
		"AuthorizeMemberOf admits a service of the platform":   {a: kit.AuthorizeMemberOf(payment), peer: order, allow: true},
		"AuthorizeMemberOf refuses the same name elsewhere":    {a: kit.AuthorizeMemberOf(payment), peer: elsewhere},
		"AuthorizeServices admits a listed service":            {a: kit.AuthorizeServices(payment, "order"), peer: order, allow: true},
		"AuthorizeServices refuses an unlisted service":        {a: kit.AuthorizeServices(payment, "order"), peer: shop.ID("notification")},
		"AuthorizeServices refuses a listed name of elsewhere": {a: kit.AuthorizeServices(payment, "order"), peer: elsewhere},
		"AuthorizeAny admits anyone the CA vouches for":        {a: kit.AuthorizeAny(), peer: elsewhere, allow: true},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.a(tc.peer)
			if tc.allow != (err == nil) || (err != nil && !errors.Is(err, kit.ErrPeerNotAllowed)) {
				t.Fatalf("authorize(%s) = %v; want allowed=%v", tc.peer, err, tc.allow)
			}
		})
	}
}
