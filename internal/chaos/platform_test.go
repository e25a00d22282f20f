package chaos

import (
	"bufio"
	"crypto/x509"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/internal/pki"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

func TestRewriter(t *testing.T) {
	c := &cluster{r: &rendered{services: []*corev1.Service{{}}}, routes: map[string]string{
		"chaos-product.chaos.svc.cluster.local:80":   "127.0.0.1:20001",
		"chaos-product.chaos.svc:9090":               "127.0.0.1:20002",
		"chaos-nats.chaos.svc.cluster.local:4222":    "127.0.0.1:20003",
		"chaos-payment.chaos.svc.cluster.local:8081": "127.0.0.1:20004",
	}}
	c.r.services[0].Name = "chaos-product"
	p := &pod{name: "chaos-order-0", ports: map[string]int{"http": 21000, "grpc": 21001}}
	ct := corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "grpc", ContainerPort: 9090}}}
	rw := rewriter{c: c, pod: p, container: ct, mounts: map[string]string{"/var/run/switchboard/tls": "/tmp/pod/tls", "/data": "/tmp/pod/data"}}
	for _, tc := range []struct{ in, want string }{
		{":8080", "127.0.0.1:21000"},
		{"0.0.0.0:9090", "127.0.0.1:21001"},
		{":7777", ":7777"}, // no such container port: left alone
		{"http://chaos-product.chaos.svc.cluster.local", "http://127.0.0.1:20001"},
		{"http://chaos-payment.chaos.svc.cluster.local:8081/x", "http://127.0.0.1:20004/x"},
		{"dns:///chaos-product.chaos.svc:9090", "dns:///127.0.0.1:20002"},
		{"nats://chaos-nats.chaos.svc.cluster.local:4222,nats://chaos-nats.chaos.svc.cluster.local:4222", "nats://127.0.0.1:20003,nats://127.0.0.1:20003"},
		{"/var/run/switchboard/tls", "/tmp/pod/tls"},
		{"/data/jetstream", "/tmp/pod/data/jetstream"},
		{"2s", "2s"},
	} {
		got, err := rw.value(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q → %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got, err := rw.value("http://chaos-user.chaos.svc.cluster.local"); err == nil {
		t.Errorf("a Service nothing routes became %q", got)
	}
	conf := "listen: \"0.0.0.0:8080\"\njetstream { store_dir: \"/data/jetstream\" }\nother: \"/database\"\n"
	want := "listen: \"127.0.0.1:21000\"\njetstream { store_dir: \"/tmp/pod/data/jetstream\" }\nother: \"/database\"\n"
	if got := rw.text(conf); got != want {
		t.Errorf("config rewritten as\n%s\nwant\n%s", got, want)
	}
}

// The proxy takes the ready pods in turn, a connection each.
func TestProxyRoundRobin(t *testing.T) {
	var backends []*backend
	for _, name := range []string{"a", "b"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()
		p := &pod{name: name}
		p.ready.Store(true)
		backends = append(backends, &backend{pod: p, addr: ln.Addr().String()})
	}
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	px, err := newProxy("test", port, backends)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	for i := range 6 {
		c, err := net.DialTimeout("tcp", px.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}
	if got := px.Spread(); got["a"] != 3 || got["b"] != 3 {
		t.Errorf("6 connections went %v, want 3 to each pod", got)
	}
}

// The proxy sends each connection to a ready pod, skips pods that are not
// ready and fails over from a pod that refuses.
func TestProxyFailsOver(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	deadPort, _ := loopback.FreePort() // nothing listens there: a killed pod
	live, dead := &pod{name: "live"}, &pod{name: "dead"}
	live.ready.Store(true)
	dead.ready.Store(true) // its probe has not noticed yet
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	px, err := newProxy("test", port, []*backend{
		{pod: dead, addr: net.JoinHostPort("127.0.0.1", itoa(deadPort))},
		{pod: live, addr: echo.Addr().String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	roundTrip := func() error {
		c, err := net.DialTimeout("tcp", px.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != "ping" {
			t.Errorf("echoed %q", line)
		}
		return nil
	}
	for i := range 4 {
		if err := roundTrip(); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if got := px.Spread(); got["live"] != 4 || got["dead"] != 0 {
		t.Errorf("connections went %v, want all 4 to live", got)
	}
	live.ready.Store(false)
	if err := roundTrip(); err == nil {
		t.Error("a connection got through with no ready pod")
	}
}

// Laid out, the rendered Platform runs each process as the operator and
// the kubelet would: its own certificate (issued by internal/pki through
// render) in its TLS_DIR, its own listen ports, its own broker user, and
// every upstream reached through the Service's route, which is a
// round-robin proxy over every replica of a replicated service.
func TestLayoutWiresTheRenderedPlatform(t *testing.T) {
	r, err := renderPlatform()
	if err != nil {
		t.Fatal(err)
	}
	c, err := layout(t.TempDir(), r, Binaries{Switchboard: "/switchboard", NATSServer: "/nats-server"},
		harnessEnv(Config{Lease: 2 * time.Second, Sweep: 2 * time.Second}, "127.0.0.1:2525"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	// behind resolves a routed address to the pods' addresses it reaches.
	behind := func(addr string) []string {
		for _, px := range c.proxies {
			if px.Addr() == addr {
				var out []string
				for _, b := range px.backends {
					out = append(out, b.addr)
				}
				return out
			}
		}
		return []string{addr}
	}
	// portsOf lists the loopback addresses of a port of every pod of a service.
	portsOf := func(service, port string) []string {
		var out []string
		for _, p := range c.podsOf(service) {
			out = append(out, net.JoinHostPort("127.0.0.1", itoa(p.ports[port])))
		}
		return out
	}
	ca, err := pki.CertPoolFromPEM(r.secrets[render.CASecretName(r.pf)].Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}

	brokerUsers := map[string]string{} // user → service
	for _, svc := range catalog.ForWorkloads(v1alpha1.WorkloadCommerce) {
		pods := c.podsOf(svc.Name)
		if len(pods) != int(Replicas[svc.Name]) {
			t.Errorf("%s: %d pods, want %d", svc.Name, len(pods), Replicas[svc.Name])
		}
		for _, p := range pods {
			env := envMap(p.env)
			t.Run(p.name, func(t *testing.T) {
				// Listen addresses: the pod's own loopback ports.
				for name, port := range map[string]string{catalog.EnvHTTPAddr: render.PortNameHTTP, catalog.EnvOpsAddr: render.PortNameOps} {
					if want := "127.0.0.1:" + itoa(p.ports[port]); env[name] != want {
						t.Errorf("%s = %q, want %q", name, env[name], want)
					}
				}
				if svc.ServesGRPC() {
					if want := "127.0.0.1:" + itoa(p.ports[render.PortNameGRPC]); env[catalog.EnvGRPCAddr] != want {
						t.Errorf("%s = %q, want %q", catalog.EnvGRPCAddr, env[catalog.EnvGRPCAddr], want)
					}
				}
				if want := "http://127.0.0.1:" + itoa(p.ports[render.PortNameOps]) + "/readyz"; p.probe.url != want {
					t.Errorf("readiness probe %q, want %q", p.probe.url, want)
				}

				// Identity: the service's own certificate, from the Platform's CA.
				dir := env[catalog.EnvTLSDir]
				if !strings.HasPrefix(dir, c.dir) {
					t.Fatalf("%s = %q, not a directory of the pod", catalog.EnvTLSDir, dir)
				}
				certPEM, err := os.ReadFile(filepath.Join(dir, corev1.TLSCertKey))
				if err != nil {
					t.Fatal(err)
				}
				keyPEM, err := os.ReadFile(filepath.Join(dir, corev1.TLSPrivateKeyKey))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(filepath.Join(dir, render.SecretKeyCABundle)); err != nil {
					t.Error(err)
				}
				leaf, err := pki.ParseLeaf(certPEM, keyPEM)
				if err != nil {
					t.Fatal(err)
				}
				id, err := pki.SPIFFEIDFromCert(leaf.Cert)
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := render.ServiceID(r.pf, svc.Name); id != want {
					t.Errorf("certificate names %s, want %s", id, want)
				}
				if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("certificate not issued by the Platform's CA: %v", err)
				}

				// Broker: a user of its own, none for the gateway.
				user := env[catalog.EnvNATSUser]
				switch {
				case !svc.UsesBroker():
					if user != "" {
						t.Errorf("%s has broker user %q", svc.Name, user)
					}
				case user == "" || user == c.brokerEnv[catalog.EnvNATSUser]:
					t.Errorf("broker user %q, want one of %s's own", user, svc.Name)
				case brokerUsers[user] != "" && brokerUsers[user] != svc.Name:
					t.Errorf("broker user %q is %s's too", user, brokerUsers[user])
				default:
					brokerUsers[user] = svc.Name
				}

				// Upstreams: gRPC for services, https for the gateway (to
				// the services of the workload), each to every replica of
				// the upstream.
				for _, up := range svc.Upstreams {
					var addr, port string
					if svc.Name == catalog.Gateway {
						if len(c.podsOf(up)) == 0 {
							continue // another workload's: not routed
						}
						u, err := url.Parse(env[catalog.EnvURL(up)])
						if err != nil || u.Scheme != "https" {
							t.Errorf("%s = %q, want an https URL", catalog.EnvURL(up), env[catalog.EnvURL(up)])
							continue
						}
						addr, port = u.Host, render.PortNameHTTP
					} else {
						target := env[catalog.EnvGRPC(up)]
						var ok bool
						if addr, ok = strings.CutPrefix(target, "dns:///"); !ok {
							t.Errorf("%s = %q, want a dns:/// target", catalog.EnvGRPC(up), target)
							continue
						}
						port = render.PortNameGRPC
					}
					got, want := behind(addr), portsOf(up, port)
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("%s reaches %v, want %s's %s ports %v", up, got, up, port, want)
					}
				}
			})
		}
	}
}

func envMap(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}
