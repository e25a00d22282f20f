package local_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/local"
)

// Who may call what, on a whole running platform, every hop secured as on
// a cluster. For every method of every gRPC service a catalog row serves
// (read from the generated descriptors, so a method added to a .proto is
// in the table at once): a caller without a certificate and a service of
// another platform never complete the handshake; every service of the
// platform that the catalog does not list for the method, the gateway
// included, is refused with PERMISSION_DENIED; and the listed callers get
// through to the method (which refuses the empty request as invalid, so
// nothing changes). A method the catalog says nothing of fails the test.
func TestEveryInternalMethodAdmitsItsCallersOnly(t *testing.T) {
	p := startAll(t)
	ctx := context.Background()
	declared := map[string][]string{}
	for _, m := range catalog.InternalMethods() {
		declared[m.Method] = m.Callers
	}

	// One connection per caller and server, as the caller's identity.
	type pair struct{ caller, server string }
	conns := map[pair]*grpc.ClientConn{}
	dial := func(server string, cfg *tls.Config) *grpc.ClientConn {
		conn, err := grpc.NewClient(p.GRPCAddrs[server], grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	as := func(caller, server string) *grpc.ClientConn {
		k := pair{caller, server}
		if conns[k] == nil {
			ident, err := p.Identity(caller)
			if err != nil {
				t.Fatal(err)
			}
			conns[k] = dial(server, kit.ClientTLSConfig(ident, kit.AuthorizeID(p.Base.Sibling(server))))
		}
		return conns[k]
	}
	outsider := func(server string) *grpc.ClientConn {
		// Issued by the same CA, for the same service name, on another
		// platform of the namespace.
		l, err := pki.Issue(p.CA, kit.SPIFFEID{TrustDomain: p.Base.TrustDomain, Namespace: local.Namespace, Platform: "other", Service: "order"},
			nil, time.Hour, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		ident, err := kit.NewIdentity(l.CertPEM, l.KeyPEM, p.CA.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		return dial(server, kit.ClientTLSConfig(ident, kit.AuthorizeID(p.Base.Sibling(server))))
	}
	noCert := func(server string) *grpc.ClientConn {
		return dial(server, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}) // no certificate to offer
	}

	methods := 0
	for _, row := range catalog.All() {
		for _, name := range row.GRPC {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sd := d.(protoreflect.ServiceDescriptor)
			for i := range sd.Methods().Len() {
				md := sd.Methods().Get(i)
				full := "/" + name + "/" + string(md.Name())
				methods++
				t.Run(full, func(t *testing.T) {
					callers, ok := declared[full]
					if !ok {
						t.Fatalf("the catalog says nothing of who may call %s", full)
					}
					call := func(conn *grpc.ClientConn) error {
						in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
						if err != nil {
							t.Fatal(err)
						}
						out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
						if err != nil {
							t.Fatal(err)
						}
						cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
						defer cancel()
						return conn.Invoke(cctx, full, in.New().Interface(), out.New().Interface())
					}
					for _, who := range []struct {
						name string
						conn *grpc.ClientConn
					}{{"a caller without a certificate", noCert(row.Name)}, {"a service of another platform", outsider(row.Name)}} {
						// Refused in the handshake: the call never reaches the server.
						if err := call(who.conn); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Unauthenticated {
							t.Errorf("%s: %v, want the handshake refused", who.name, err)
						}
					}
					for _, caller := range catalog.Names(catalog.All()) {
						err := call(as(caller, row.Name))
						code := status.Code(err)
						if slices.Contains(callers, caller) {
							if code == codes.PermissionDenied || code == codes.Unauthenticated || code == codes.Unavailable || code == codes.Unimplemented {
								t.Errorf("%s, a listed caller, was refused: %v", caller, err)
							}
						} else if code != codes.PermissionDenied {
							t.Errorf("%s, not a listed caller: %v, want PERMISSION_DENIED", caller, err)
						}
					}
				})
			}
		}
	}
	if methods < len(catalog.InternalMethods()) {
		t.Fatalf("walked %d methods, the catalog lists %d", methods, len(catalog.InternalMethods()))
	}
}

// A service's API port admits the gateway alone: any other service's
// certificate (order calling product's REST API, say) is refused in the
// handshake, before a request is read.
func TestOnlyTheGatewayReachesTheAPIPorts(t *testing.T) {
	p := startAll(t)
	for _, server := range p.Services() {
		if server == catalog.Gateway {
			continue
		}
		for _, caller := range p.Services() {
			c, err := p.HTTPClient(caller, server)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Get(p.URLs[server] + "/")
			if caller == catalog.Gateway {
				if err != nil {
					t.Errorf("the gateway calling %s: %v", server, err)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				continue
			}
			if err == nil {
				res.Body.Close()
				t.Errorf("%s reached %s's API: %d", caller, server, res.StatusCode)
			}
		}
		// The ops port stays plain, for probes and scrapers.
		res, err := http.Get(p.OpsURLs[server] + "/readyz")
		if err != nil || res.StatusCode != http.StatusOK {
			t.Errorf("%s's ops port: %v %v", server, res, err)
			continue
		}
		res.Body.Close()
	}
}

// startAll runs every workload with the secured paths.
func startAll(t *testing.T) *local.Platform {
	t.Helper()
	p, err := local.Start(context.Background(), local.Options{Addr: "127.0.0.1:0", ShutdownGrace: 200 * time.Millisecond,
		Env: map[string]string{"BCRYPT_COST": "4", "UPSTREAM_ATTEMPTS": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// The embedded broker has the users the operator renders: each service
// logs in as its own, allowed its catalog row, and the gateway has none.
// Notification's user may not publish payment.completed nor change ORDERS,
// whose owner is order; the administrative user may.
func TestLocalBrokerUsersAreTheRenderedOnes(t *testing.T) {
	p := startAll(t)
	if env := p.Env(catalog.Gateway); env[catalog.EnvNATSUser] != "" || env[catalog.EnvNATSURL] != "" {
		t.Errorf("the gateway was given the broker: %v", env)
	}
	env := p.Env("notification")
	if env[catalog.EnvNATSUser] != "notification" {
		t.Fatalf("notification's broker user is %q", env[catalog.EnvNATSUser])
	}
	violations := make(chan error, 4)
	nc, err := nats.Connect(p.NATSURL, nats.UserInfo(env[catalog.EnvNATSUser], env[catalog.EnvNATSPassword]),
		nats.CustomInboxPrefix(catalog.InboxPrefix("notification")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Nor change ORDERS, which it reads and order owns.
	for _, subj := range []string{catalog.PaymentCompleted, "$JS.API.STREAM.UPDATE.ORDERS"} {
		if err := nc.Publish(subj, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-violations:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") || !strings.Contains(err.Error(), subj) {
				t.Fatalf("publishing %s as notification: %v", subj, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the broker let notification publish %s", subj)
		}
	}
	if got, want := env[catalog.EnvBrokerServices], strings.Join(catalog.BrokerServices(catalog.All()), ","); got != want {
		t.Errorf("notification's %s = %q, want %q", catalog.EnvBrokerServices, got, want)
	}
	admin, err := nats.Connect(p.NATSURL, nats.UserInfo(p.BrokerUser, p.BrokerPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	js, _ := jetstream.New(admin)
	if _, err := js.Stream(context.Background(), "PAYMENTS"); err != nil {
		t.Fatalf("the administrative user reading a stream: %v", err)
	}
}
