package render

import (
	"crypto/rand"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

func catalogService(t *testing.T, name string) catalog.Service {
	t.Helper()
	s, ok := catalog.Lookup(name)
	if !ok {
		t.Fatalf("no catalog service %q", name)
	}
	return s
}

// These tests run the rendered broker config through the nats-server the
// project embeds, the way a pod would: env vars resolved as the kubelet
// resolves them, args and nats.conf as mounted.

var kubeletVar = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// kubeletExpand implements the kubelet's $(VAR) expansion of env values
// and args: defined variables are replaced, $$ escapes, the rest stays.
func kubeletExpand(s string, env map[string]string) string {
	return kubeletVar.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// brokerPod is broker pod ordinal i as the kubelet would start it.
type brokerPod struct {
	env  map[string]string
	args []string
}

func startBrokerPod(t *testing.T, objs []client.Object, p *v1alpha1.Platform, i int) brokerPod {
	t.Helper()
	sts := find[*appsv1.StatefulSet](t, objs, BrokerName(p))
	secret := find[*corev1.Secret](t, objs, AuthSecretName(p))
	c := sts.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			if e.ValueFrom.SecretKeyRef.Name != secret.Name {
				t.Fatalf("env %s refers to Secret %s", e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
			env[e.Name] = string(secret.Data[e.ValueFrom.SecretKeyRef.Key])
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = fmt.Sprintf("%s-%d", sts.Name, i)
		case e.ValueFrom != nil:
			t.Fatalf("env %s: unsupported source %+v", e.Name, e.ValueFrom)
		default:
			env[e.Name] = kubeletExpand(e.Value, env)
		}
	}

	// Mount the ConfigMap where the args expect it.
	cm := find[*corev1.ConfigMap](t, objs, BrokerConfigName(p))
	dir := t.TempDir()
	confPath := filepath.Join(dir, brokerConfigKey)
	if err := os.WriteFile(confPath, []byte(cm.Data[brokerConfigKey]), 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range c.Args {
		a = kubeletExpand(a, env)
		if a == brokerConfigDir+"/"+brokerConfigKey {
			a = confPath
		}
		args = append(args, a)
	}
	return brokerPod{env: env, args: args}
}

// options parses the pod's args and config exactly as nats-server's main does.
func (bp brokerPod) options(t *testing.T) *server.Options {
	t.Helper()
	for k, v := range bp.env {
		t.Setenv(k, v)
	}
	noop := func() {}
	opts, err := server.ConfigureOptions(flag.NewFlagSet("nats-server", flag.ContinueOnError), bp.args, noop, noop, noop)
	if err != nil {
		t.Fatalf("nats-server refuses the rendered config: %v\nargs %q", err, bp.args)
	}
	return opts
}

func TestBrokerConfigParsesAsNATSServerReadsIt(t *testing.T) {
	generated, err := NewCredentials(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		platform *v1alpha1.Platform
		creds    Credentials
	}{
		{"one replica, file storage", platform("shop"), testCredentials},
		{"three replicas, file storage", platform("shop", testgen.WithBrokerReplicas(3), testgen.WithStorage(v1alpha1.StorageFile, "10Gi", "fast")), testCredentials},
		{"five replicas in memory", platform("shop", testgen.WithBrokerReplicas(5), testgen.WithStorage(v1alpha1.StorageMemory, "2Gi", "")), testCredentials},
		{"credentials from crypto/rand", platform("shop", testgen.WithBrokerReplicas(3)), generated},
		{"a platform whose pod names lex as numbers", platform("1234", testgen.WithBrokerReplicas(3), testgen.WithNamespace("0")), generated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.platform
			opts := testOptions()
			opts.Credentials = tt.creds
			objs, err := Platform(p, opts)
			if err != nil {
				t.Fatal(err)
			}
			replicas := BrokerReplicas(p)
			size := brokerSize(p)
			for i := range int(replicas) {
				o := startBrokerPod(t, objs, p, i).options(t)

				if want := fmt.Sprintf("%s-nats-%d", p.Name, i); o.ServerName != want {
					t.Errorf("server name %q, want %q", o.ServerName, want)
				}
				if o.Host != "0.0.0.0" || o.Port != ClientPort || o.HTTPPort != MonitorPort {
					t.Errorf("listens on %s:%d, monitor %d", o.Host, o.Port, o.HTTPPort)
				}
				if o.Username != "" || o.Password != "" || o.NoAuthUser != "" {
					t.Errorf("client auth %q/%q (no-auth user %q), want one user per service", o.Username, o.Password, o.NoAuthUser)
				}
				var users []string
				for _, u := range o.Users {
					if u.Username == tt.creds.SystemUser {
						// The system user, in the system account, for the
						// operator's removal of departed servers.
						if replicas == 1 || u.Password != tt.creds.SystemPassword || u.Account == nil || u.Account.Name != "SYS" || o.SystemAccount != "SYS" {
							t.Errorf("the system user with %d replicas: password %q, account %v, system account %q", replicas, u.Password, u.Account, o.SystemAccount)
						}
						continue
					}
					if u.Account != nil && u.Account.Name == "SYS" {
						t.Errorf("user %s is in the system account", u.Username)
					}
					if u.Username == tt.creds.NATSUser {
						// The administrative user: the route credentials, unlimited.
						if u.Password != tt.creds.NATSPassword || u.Permissions != nil {
							t.Errorf("the administrative user: password %q, permissions %+v", u.Password, u.Permissions)
						}
						users = append(users, "admin")
						continue
					}
					users = append(users, u.Username)
					want, err := PermissionsFor(catalogService(t, u.Username), brokerServices(EnabledServices(p)))
					if err != nil {
						t.Fatal(err)
					}
					if u.Password != testBrokerUsers[u.Username].PasswordHash {
						t.Errorf("user %s: password %q, want its bcrypt hash", u.Username, u.Password)
					}
					if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil ||
						!slices.Equal(u.Permissions.Publish.Allow, want.Publish) || len(u.Permissions.Publish.Deny) != 0 ||
						!slices.Equal(u.Permissions.Subscribe.Allow, want.Subscribe) || len(u.Permissions.Subscribe.Deny) != 0 ||
						u.Permissions.Response != nil {
						t.Errorf("user %s: permissions %+v, want %+v", u.Username, u.Permissions, want)
					}
				}
				if want := []string{"user", "product", "order", "payment", "notification", "account", "content", "playback", "analytics", "recommendation", "admin"}; !slices.Equal(users, want) {
					t.Errorf("users %v, want %v (every service but the gateway, and the administrative user)", users, want)
				}
				if !o.JetStream || o.StoreDir != brokerStoreDir {
					t.Errorf("jetstream %v in %q", o.JetStream, o.StoreDir)
				}
				if memoryStorage(p) {
					if o.JetStreamMaxMemory != size.Value() {
						t.Errorf("max memory %d, want %d", o.JetStreamMaxMemory, size.Value())
					}
				} else if o.JetStreamMaxStore != size.Value() {
					t.Errorf("max store %d, want %d", o.JetStreamMaxStore, size.Value())
				}

				if replicas == 1 {
					if o.Cluster.Port != 0 || len(o.Routes) != 0 {
						t.Errorf("a single broker is clustered: port %d, routes %v", o.Cluster.Port, o.Routes)
					}
					continue
				}
				if o.Cluster.Name != p.Name || o.Cluster.Port != ClusterPort {
					t.Errorf("cluster %q on %d", o.Cluster.Name, o.Cluster.Port)
				}
				if o.Cluster.Username != tt.creds.NATSUser || o.Cluster.Password != tt.creds.NATSPassword {
					t.Errorf("the cluster port is open: route auth %q/%q", o.Cluster.Username, o.Cluster.Password)
				}
				if len(o.Routes) != int(replicas) {
					t.Fatalf("%d routes, want %d", len(o.Routes), replicas)
				}
				for j, r := range o.Routes {
					pass, _ := r.User.Password()
					if r.User.Username() != tt.creds.NATSUser || pass != tt.creds.NATSPassword {
						t.Errorf("route %d does not authenticate: %v", j, r.User)
					}
					if want := fmt.Sprintf("%s:%d", brokerPodHost(p, int32(j)), ClusterPort); r.Host != want {
						t.Errorf("route %d to %s, want %s", j, r.Host, want)
					}
				}
			}
		})
	}
}

// The broker is never open: started from the rendered config, it refuses a
// client without credentials, with a wrong password or with another
// service's password, and serves JetStream to a service with its own and
// to the administrative user.
func TestBrokerRequiresCredentials(t *testing.T) {
	p := platform("shop")
	objs := mustRender(t, p)
	o := startBrokerPod(t, objs, p, 0).options(t)
	o.Host, o.Port, o.HTTPHost, o.HTTPPort = "127.0.0.1", server.RANDOM_PORT, "127.0.0.1", server.RANDOM_PORT
	o.StoreDir = t.TempDir()
	o.NoSigs = true
	s := runServer(t, o)

	order := BrokerUserFromSecret(find[*corev1.Secret](t, objs, BrokerUserSecretName(p, "order")))
	for name, opts := range map[string][]nats.Option{
		"no credentials":                   nil,
		"a wrong password":                 {nats.UserInfo(order.User, "wrong")},
		"another service's":                {nats.UserInfo(order.User, testBrokerUsers["payment"].Password)},
		"the bcrypt hash itself":           {nats.UserInfo(order.User, order.PasswordHash)},
		"the route user, another password": {nats.UserInfo(testCredentials.NATSUser, testBrokerUsers["order"].Password)},
		"the gateway, as anything":         {nats.UserInfo(catalog.Gateway, "")},
	} {
		if nc, err := nats.Connect(s.ClientURL(), opts...); err == nil {
			nc.Close()
			t.Errorf("connected with %s", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("unexpected error with %s: %v", name, err)
		}
	}
	admin, err := nats.Connect(s.ClientURL(), nats.UserInfo(testCredentials.NATSUser, testCredentials.NATSPassword))
	if err != nil {
		t.Fatalf("the administrative user is refused: %v", err)
	}
	admin.Close()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(order.User, order.Password), nats.CustomInboxPrefix(catalog.InboxPrefix("order")))
	if err != nil {
		t.Fatalf("order's own credentials are refused: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Errorf("JetStream: %v", err)
	}

	// The probes' endpoints answer on the monitor port.
	sts := find[*appsv1.StatefulSet](t, objs, BrokerName(p))
	c := sts.Spec.Template.Spec.Containers[0]
	for _, probe := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		resp, err := http.Get("http://" + s.MonitorAddr().String() + probe.HTTPGet.Path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", probe.HTTPGet.Path, resp.Status)
		}
	}
}

// Three brokers started from the rendered config form a JetStream cluster:
// the routes carry the credentials the cluster port requires. Only the
// route hosts are rewritten, from pod DNS names to local ports.
func TestBrokerClusterForms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node JetStream cluster")
	}
	p := platform("shop", testgen.WithBrokerReplicas(3))
	objs := mustRender(t, p)
	var ports []int
	for range 3 {
		port, err := loopback.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, port)
	}
	var servers []*server.Server
	for i := range 3 {
		pod := startBrokerPod(t, objs, p, i)
		for j := range 3 {
			name := fmt.Sprintf("%s%d", envRoutePrefix, j)
			pod.env[name] = strings.Replace(pod.env[name], fmt.Sprintf("%s:%d", brokerPodHost(p, int32(j)), ClusterPort), fmt.Sprintf("127.0.0.1:%d", ports[j]), 1)
		}
		o := pod.options(t)
		o.Host, o.Port, o.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", ports[i]
		o.StoreDir = t.TempDir()
		o.NoSigs = true
		servers = append(servers, runServer(t, o))
	}

	order := testBrokerUsers["order"]
	nc, err := nats.Connect(servers[0].ClientURL(), nats.UserInfo(order.User, order.Password), nats.CustomInboxPrefix(catalog.InboxPrefix("order")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.MaxWait(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := js.AddStream(&nats.StreamConfig{Name: "ORDERS", Subjects: []string{"order.>"}, Replicas: 3})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			for i, s := range servers {
				t.Logf("server %d: %d routes", i, s.NumRoutes())
			}
			t.Fatalf("no replicated stream on the rendered cluster: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func runServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}

// FuzzNATSCredential checks the promise behind natsCredential: a value it
// accepts reads back from nats-server's config parser (which is how $VAR
// substitution parses an env var) and from a route URL unchanged.
func FuzzNATSCredential(f *testing.F) {
	for _, s := range []string{testCredentials.NATSUser, "abcdefghijklmnop", "a123456789012345", "e1000000000000000", "a-b.c~d_e-f.g~h_i", "yes_no_on_off_true", "k0000000000000000"} {
		f.Add(s)
	}
	c, _ := NewCredentials(&counter{})
	f.Add(c.NATSPassword)
	f.Fuzz(func(t *testing.T, s string) {
		if !natsCredential.MatchString(s) {
			return
		}
		m, err := conf.Parse("pk=" + s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if m["pk"] != s {
			t.Fatalf("%q reads back as %#v", s, m["pk"])
		}
		u, err := url.Parse("nats://" + s + ":" + s + "@host:6222")
		if err != nil {
			t.Fatalf("%q in a route URL: %v", s, err)
		}
		if pass, _ := u.User.Password(); u.User.Username() != s || pass != s {
			t.Fatalf("%q reads back from a URL as %v", s, u.User)
		}
	})
}
