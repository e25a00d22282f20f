// Package e2e runs what the operator renders. No kubelet runs here, so the
// test does the kubelet's part for the rendered Deployments: it takes each
// container's command, args and env exactly as rendered (secretKeyRef values
// resolved from the rendered Secret, the tls Secret written where it is
// mounted), maps every in-cluster Service URL and gRPC target to the
// loopback port of the process behind that Service, starts a real NATS
// with the rendered broker config and credentials, waits for each declared
// probe, and drives an order through the gateway, every hop on mutual TLS
// with the rendered certificates. A mismatch between what the operator
// renders and what the services read (env names, ports, probe paths, args,
// broker auth, identities) fails it.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcstatus "google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/registry"
)

// The image's binary path, which the Deployments' command names.
const imageBinary = "/switchboard"

func TestRenderedCommercePlatformRuns(t *testing.T) {
	if m := registry.Missing(catalog.Commerce); len(m) > 0 {
		t.Fatalf("commerce services missing from the binary: %v", m)
	}
	bin := buildSwitchboard(t)
	pf := newPlatform(t, "shop", "e2e", v1alpha1.WorkloadCommerce)
	gateway, ops, procs := runPlatform(t, bin, pf)
	driveOrder(t, gateway)
	driveAdmin(t, gateway, pf, "/api/user/login")
	checkPorts(t, gateway, ops, 5)
	checkIdentities(t, pf, procs)
}

// TestRenderedStreamingPlatformRuns starts the streaming workload once its
// services are built in, and checks every one answers its probes.
func TestRenderedStreamingPlatformRuns(t *testing.T) {
	if m := registry.Missing(catalog.Streaming); len(m) > 0 {
		t.Skipf("streaming services not built into the binary yet: %v", m)
	}
	bin := buildSwitchboard(t)
	pf := newPlatform(t, "tv", "e2e", v1alpha1.WorkloadStreaming)
	gateway, ops, _ := runPlatform(t, bin, pf)
	get(t, gateway+"/health", 200)
	driveAdmin(t, gateway, pf, "/api/account/login")
	checkPorts(t, gateway, ops, 5)
}

// checkIdentities calls with the certificates the operator rendered into
// each service's tls Secret: notification's calling payment's Charge is
// refused PERMISSION_DENIED, order's is admitted (payment refuses its empty
// request as invalid, so nothing is charged), and order's calling
// product's REST API is refused in the handshake, which admits the
// gateway's alone.
func checkIdentities(t *testing.T, r *rendered, procs map[string]*process) {
	t.Helper()
	identity := func(svc string) *kit.Identity {
		s, ok := r.secrets[render.TLSSecretName(r.pf, svc)]
		if !ok {
			t.Fatalf("no tls Secret rendered for %s", svc)
		}
		ident, err := kit.NewIdentity(s.Data[kit.TLSCertFile], s.Data[kit.TLSKeyFile], s.Data[kit.TLSCAFile])
		if err != nil {
			t.Fatalf("%s's rendered identity: %v", svc, err)
		}
		return ident
	}
	payment := procs[render.ObjectName(r.pf, "payment")]
	charge := func(as string) error {
		ident := identity(as)
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", payment.grpcPort),
			grpc.WithTransportCredentials(credentials.NewTLS(kit.ClientTLSConfig(ident, kit.AuthorizeID(ident.ID().Sibling("payment"))))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = paymentv1.NewPaymentsClient(conn).Charge(ctx, &paymentv1.ChargeRequest{})
		return err
	}
	if err := charge("notification"); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Errorf("notification calling payment's Charge: %v, want PERMISSION_DENIED", err)
	}
	if err := charge("order"); grpcstatus.Code(err) != codes.InvalidArgument {
		t.Errorf("order calling payment's Charge with an empty request: %v, want INVALID_ARGUMENT", err)
	}
	order := identity("order")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: kit.ClientTLSConfig(order, kit.AuthorizeID(order.ID().Sibling("product")))}}
	product := procs[render.ObjectName(r.pf, "product")]
	if res, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/products", product.port)); err == nil {
		res.Body.Close()
		t.Errorf("order reached product's REST API: %d", res.StatusCode)
	}
}

// checkPorts: the gateway's API port serves the API and no probe; its ops
// port asks every upstream's readiness through the rendered ops URLs and
// Services, and finds them all ready.
func checkPorts(t *testing.T, gateway, ops string, upstreams int) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/health/detail"} {
		get(t, gateway+path, 404)
	}
	res, err := httpClient.Get(ops + "/health/detail")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var d struct {
		Status   string
		Services map[string]struct{ Ready bool }
	}
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil || res.StatusCode != 200 || d.Status != "ok" || len(d.Services) != upstreams {
		t.Fatalf("the gateway's /health/detail: %d %+v %v, want %d upstreams ready", res.StatusCode, d, err, upstreams)
	}
}

// rendered is one render of a Platform, indexed.
type rendered struct {
	pf          *v1alpha1.Platform
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	secrets     map[string]*corev1.Secret
	configMaps  map[string]*corev1.ConfigMap
	statefulSet *appsv1.StatefulSet
}

func newPlatform(t *testing.T, name, ns string, w v1alpha1.Workload) *rendered {
	t.Helper()
	p := testgen.Platform(name, testgen.WithNamespace(ns), testgen.WithWorkloads(w), testgen.WithImage("example.test/switchboard:e2e"))
	opts, err := render.KeepSecrets(p, nil, nil, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	objs, err := render.Platform(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{pf: p, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			r.deployments = append(r.deployments, o)
		case *corev1.Service:
			r.services = append(r.services, o)
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *appsv1.StatefulSet:
			r.statefulSet = o
		}
	}
	if len(r.deployments) == 0 || r.statefulSet == nil {
		t.Fatalf("render gave %d Deployments and no broker", len(r.deployments))
	}
	return r
}

// process is one rendered container run on loopback.
type process struct {
	name string
	dep  *appsv1.Deployment
	// port, opsPort and grpcPort are the loopback ports standing in for
	// the container ports "http", "ops" and "grpc" (0 when it has none).
	port, opsPort, grpcPort int
	cmd                     *exec.Cmd
	log                     string
	done                    chan struct{}
}

// loopbackPort is the loopback port standing in for a container port name.
func (p *process) loopbackPort(t *testing.T, name string) int {
	t.Helper()
	switch name {
	case render.PortNameHTTP:
		return p.port
	case render.PortNameOps:
		return p.opsPort
	case render.PortNameGRPC:
		if p.grpcPort != 0 {
			return p.grpcPort
		}
	}
	t.Fatalf("%s: no loopback port for container port %q", p.name, name)
	return 0
}

// runPlatform starts the broker and every Deployment's container, waits for
// their probes, and returns the gateway's API and ops base URLs and the
// processes by Deployment name.
func runPlatform(t *testing.T, bin string, r *rendered) (string, string, map[string]*process) {
	t.Helper()
	natsURL, monitorAddr := startBroker(t, r)

	procs := map[string]*process{} // by Deployment name
	for _, d := range r.deployments {
		procs[d.Name] = &process{name: d.Name, dep: d, port: freePort(t), opsPort: freePort(t), done: make(chan struct{})}
		if containerPort(t, d, render.PortNameGRPC) != 0 {
			procs[d.Name].grpcPort = freePort(t)
		}
	}
	// In-cluster host:port → loopback host:port, through the Services, as
	// cluster DNS and kube-proxy would route it.
	routes := map[string]string{}
	for _, s := range r.services {
		if s.Name == render.BrokerName(r.pf) {
			for _, sp := range s.Spec.Ports {
				switch sp.Name {
				case "client":
					routes[fmt.Sprintf("%s.%s.svc.%s:%d", s.Name, s.Namespace, render.ClusterDomain, sp.Port)] = natsURL
				case render.PortNameMonitor:
					// The gateway's console reads the monitor.
					routes[fmt.Sprintf("%s.%s.svc.%s:%d", s.Name, s.Namespace, render.ClusterDomain, sp.Port)] = monitorAddr
				}
			}
			continue
		}
		p := backing(t, r, s, procs)
		if p == nil {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if containerPort(t, p.dep, sp.TargetPort.String()) == 0 {
				t.Fatalf("Service %s targets port %q, which container %s does not declare", s.Name, sp.TargetPort.String(), p.name)
			}
			routes[fmt.Sprintf("%s.%s.svc.%s:%d", s.Name, s.Namespace, render.ClusterDomain, sp.Port)] = fmt.Sprintf("127.0.0.1:%d", p.loopbackPort(t, sp.TargetPort.String()))
		}
	}

	var started []*process
	// The kubelet stops a Platform's pods side by side; each drains for its
	// SHUTDOWN_DRAIN, so one after another would add up.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range started {
			wg.Go(func() { stop(t, p) })
		}
		wg.Wait()
	})
	for _, d := range r.deployments {
		p := procs[d.Name]
		c := onlyContainer(t, d)
		if !slices.Equal(c.Command, []string{imageBinary}) {
			t.Fatalf("%s: command %q, want [%s] (the image's binary)", d.Name, c.Command, imageBinary)
		}
		env := resolveEnv(t, r, d, c, p, routes)
		p.log = filepath.Join(t.TempDir(), d.Name+".log")
		logf, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd = exec.Command(bin, c.Args...)
		p.cmd.Env = env // exactly what the pod would get, nothing inherited
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		p.cmd.SysProcAttr = procAttr()
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", d.Name, err)
		}
		go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
		started = append(started, p)
	}

	for _, d := range r.deployments {
		p := procs[d.Name]
		c := onlyContainer(t, d)
		for _, pr := range []struct {
			kind  string
			probe *corev1.Probe
		}{{"readiness", c.ReadinessProbe}, {"startup", c.StartupProbe}, {"liveness", c.LivenessProbe}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Fatalf("%s declares no HTTP %s probe", d.Name, pr.kind)
			}
			h := pr.probe.HTTPGet
			port := containerPort(t, d, h.Port.String())
			if port == 0 {
				t.Fatalf("%s: %s probe on port %q, which the container does not declare", d.Name, pr.kind, h.Port.String())
			}
			u := fmt.Sprintf("%s://127.0.0.1:%d%s", strings.ToLower(string(h.Scheme)), p.loopbackPort(t, h.Port.String()), h.Path)
			waitFor(t, p, 60*time.Second, fmt.Sprintf("%s probe %s", pr.kind, h.Path), func() error {
				return status(u, 200)
			})
		}
	}

	gw := procs[render.ObjectName(r.pf, catalog.Gateway)]
	if gw == nil {
		t.Fatal("no gateway Deployment")
	}

	// Every service that needs the broker is ready, so connected.
	metrics := scrapeText(t, runBrokerMetrics(t, bin, r, monitorAddr)+"/metrics")
	if up := sample(t, metrics, "switchboard_nats_up"); up != 1 {
		t.Errorf("the broker's metrics sidecar reports up %v", up)
	}
	if conns := sample(t, metrics, "switchboard_nats_connections"); conns < 1 {
		t.Errorf("the broker's metrics sidecar reports %v connections with every service ready", conns)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", gw.port), fmt.Sprintf("http://127.0.0.1:%d", gw.opsPort), procs
}

// runBrokerMetrics runs the broker pod's metrics sidecar with its command
// and args as rendered. In the pod, --monitor-url names the pod's loopback
// and the broker container's monitor port, and --addr the sidecar's
// metrics port: both are checked against the declared ports, then mapped
// to this test's loopback ports, as the services' addresses are. It
// returns the sidecar's base URL once its liveness probe answers.
func runBrokerMetrics(t *testing.T, bin string, r *rendered, monitorAddr string) string {
	t.Helper()
	sts := r.statefulSet
	c := containerNamed(t, sts, "metrics")
	monitorPort := declaredPort(t, containerNamed(t, sts, "nats"), "monitor")
	metricsPort := declaredPort(t, c, "metrics")
	if !slices.Equal(c.Command, []string{imageBinary}) {
		t.Fatalf("%s/metrics: command %q, want [%s] (the image's binary)", sts.Name, c.Command, imageBinary)
	}
	if c.Image != r.pf.Spec.Image {
		t.Errorf("%s/metrics runs %q, want the services image %q", sts.Name, c.Image, r.pf.Spec.Image)
	}
	if len(c.Env) != 0 {
		t.Errorf("%s/metrics has env %v; the monitor needs no credentials", sts.Name, c.Env)
	}
	p := &process{name: sts.Name + "/metrics", port: freePort(t), done: make(chan struct{})}
	args := slices.Clone(c.Args)
	mapped := 0
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--monitor-url":
			u, err := url.Parse(args[i+1])
			if err != nil || u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(int(monitorPort)) {
				t.Fatalf("%s: --monitor-url %q is not the broker container's monitor port %d on the pod's loopback", p.name, args[i+1], monitorPort)
			}
			args[i+1] = "http://" + monitorAddr
			mapped++
		case "--addr":
			if _, port, err := net.SplitHostPort(args[i+1]); err != nil || port != strconv.Itoa(int(metricsPort)) {
				t.Fatalf("%s: --addr %q is not its metrics port %d", p.name, args[i+1], metricsPort)
			}
			args[i+1] = fmt.Sprintf("127.0.0.1:%d", p.port)
			mapped++
		}
	}
	if mapped != 2 {
		t.Fatalf("%s: args %q lack --monitor-url or --addr", p.name, c.Args)
	}
	p.log = filepath.Join(t.TempDir(), "nats-metrics.log")
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = []string{} // the container's env: none
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() { stop(t, p) })

	h := c.LivenessProbe
	if h == nil || h.HTTPGet == nil || h.HTTPGet.Port.String() != "metrics" {
		t.Fatalf("%s: liveness probe %+v, want an HTTP GET on port metrics", p.name, h)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", p.port)
	waitFor(t, p, 30*time.Second, "liveness probe "+h.HTTPGet.Path, func() error { return status(base+h.HTTPGet.Path, 200) })
	return base
}

func containerNamed(t *testing.T, sts *appsv1.StatefulSet, name string) *corev1.Container {
	t.Helper()
	for i, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == name {
			return &sts.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatalf("%s has no container %q", sts.Name, name)
	return nil
}

func declaredPort(t *testing.T, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s declares no port %q", c.Name, name)
	return 0
}

func scrapeText(t *testing.T, u string) string {
	t.Helper()
	res, err := httpClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, res.StatusCode, err)
	}
	return string(b)
}

// sample returns the value of an unlabelled series in the text format.
func sample(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in:\n%s", name, text)
	return 0
}

// backing finds the one Deployment whose pods a Service selects.
func backing(t *testing.T, r *rendered, s *corev1.Service, procs map[string]*process) *process {
	t.Helper()
	if len(s.Spec.Selector) == 0 {
		t.Fatalf("Service %s selects nothing", s.Name)
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	var found []*process
	for _, d := range r.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			found = append(found, procs[d.Name])
		}
	}
	switch len(found) {
	case 0:
		if s.Name == render.BrokerHeadlessName(r.pf) {
			return nil
		}
		t.Fatalf("Service %s selects no Deployment's pods", s.Name)
	case 1:
		return found[0]
	}
	t.Fatalf("Service %s selects the pods of %d Deployments", s.Name, len(found))
	return nil
}

// resolveEnv turns a container's env into the process env: secretKeyRef
// and configMapKeyRef read from the rendered objects, in-cluster URLs routed
// to loopback, HTTP_ADDR and OPS_ADDR bound to the process's loopback ports.
func resolveEnv(t *testing.T, r *rendered, d *appsv1.Deployment, c *corev1.Container, p *process, routes map[string]string) []string {
	t.Helper()
	var env []string
	for _, e := range c.Env {
		v := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v = secretValue(t, r, e.ValueFrom.SecretKeyRef, d.Name)
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := r.configMaps[ref.Name]
			if !ok || cm.Data[ref.Key] == "" {
				t.Fatalf("%s: configMapKeyRef to key %q of ConfigMap %q, which is not rendered", d.Name, ref.Key, ref.Name)
			}
			v = cm.Data[ref.Key]
		case e.ValueFrom != nil:
			t.Fatalf("%s: env %s uses a source this test cannot resolve: %+v", d.Name, e.Name, e.ValueFrom)
		case e.Name == catalog.EnvHTTPAddr || e.Name == catalog.EnvOpsAddr || e.Name == catalog.EnvGRPCAddr:
			name := map[string]string{catalog.EnvHTTPAddr: render.PortNameHTTP, catalog.EnvOpsAddr: render.PortNameOps, catalog.EnvGRPCAddr: render.PortNameGRPC}[e.Name]
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("%s: %s=%q: %v", d.Name, e.Name, v, err)
			}
			if n, _ := strconv.Atoi(port); int32(n) != containerPort(t, d, name) {
				t.Fatalf("%s: %s=%q, but container port %q is %d", d.Name, e.Name, v, name, containerPort(t, d, name))
			}
			v = fmt.Sprintf("127.0.0.1:%d", p.loopbackPort(t, name))
		case strings.Contains(v, ".svc."+render.ClusterDomain):
			v = routeURL(t, d.Name, e.Name, v, routes)
		case e.Name == catalog.EnvTLSDir:
			v = mountSecret(t, r, d, c, v)
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// mountSecret does the kubelet's part for the Secret volume c mounts at
// path: it writes the rendered Secret's keys as files into a directory of
// its own, with the volume's mode, and returns that directory.
func mountSecret(t *testing.T, r *rendered, d *appsv1.Deployment, c *corev1.Container, path string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			s, ok := r.secrets[v.Secret.SecretName]
			if !ok {
				t.Fatalf("%s mounts Secret %s, which is not rendered", d.Name, v.Secret.SecretName)
			}
			dir := t.TempDir()
			mode := os.FileMode(0o644)
			if v.Secret.DefaultMode != nil {
				mode = os.FileMode(*v.Secret.DefaultMode)
			}
			for k, b := range s.Data {
				if err := os.WriteFile(filepath.Join(dir, k), b, mode); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}
	}
	t.Fatalf("%s: %s names %s, where no Secret volume is mounted", d.Name, catalog.EnvTLSDir, path)
	return ""
}

// routeURL rewrites the host of an in-cluster URL, or of a gRPC target
// (dns:///host:port), to where its Service routes.
func routeURL(t *testing.T, dep, name, v string, routes map[string]string) string {
	t.Helper()
	var out []string
	for _, part := range strings.Split(v, ",") {
		u, err := url.Parse(part)
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", dep, name, v, err)
		}
		if u.Scheme == "dns" {
			to, ok := routes[strings.TrimPrefix(u.Path, "/")]
			if !ok {
				t.Fatalf("%s: %s=%q names %s, which no rendered Service answers", dep, name, v, u.Path)
			}
			out = append(out, "dns:///"+to)
			continue
		}
		hostport := u.Host
		if u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443", "nats": "4222"}[u.Scheme])
		}
		to, ok := routes[hostport]
		if !ok {
			t.Fatalf("%s: %s=%q names %s, which no rendered Service answers", dep, name, v, hostport)
		}
		if strings.Contains(to, "://") { // the broker: take its URL whole
			out = append(out, to)
			continue
		}
		u.Host = to
		out = append(out, u.String())
	}
	return strings.Join(out, ",")
}

func secretValue(t *testing.T, r *rendered, ref *corev1.SecretKeySelector, who string) string {
	t.Helper()
	s, ok := r.secrets[ref.Name]
	if !ok {
		t.Fatalf("%s: secretKeyRef to Secret %q, which is not rendered", who, ref.Name)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		t.Fatalf("%s: secretKeyRef to key %q of Secret %s, which it lacks", who, ref.Key, ref.Name)
	}
	return string(v)
}

// startBroker runs nats-server in-process with the rendered nats.conf and
// the credentials the StatefulSet's env carries, on loopback: every
// service then connects as its own user, with the permissions its catalog
// row gives it. It returns the client URL and the monitor's host:port.
func startBroker(t *testing.T, r *rendered) (string, string) {
	t.Helper()
	cm, ok := r.configMaps[render.BrokerConfigName(r.pf)]
	if !ok {
		t.Fatal("no broker ConfigMap rendered")
	}
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(cm.Data["nats.conf"]), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, e := range containerNamed(t, r.statefulSet, "nats").Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			// nats.conf reads the route credentials as $NATS_USER, $NATS_PASSWORD.
			t.Setenv(e.Name, secretValue(t, r, e.ValueFrom.SecretKeyRef, r.statefulSet.Name))
		}
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("the rendered nats.conf does not parse: %v", err)
	}
	if opts.Username != "" || opts.NoAuthUser != "" || len(opts.Users) == 0 {
		t.Fatal("the rendered nats.conf does not require a user of its own for each service")
	}
	// Only where it listens and stores changes; auth and JetStream are as rendered.
	opts.Host, opts.Port, opts.HTTPHost, opts.HTTPPort = "127.0.0.1", -1, "127.0.0.1", -1
	opts.StoreDir = t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	if !ns.JetStreamEnabled() {
		t.Fatal("the rendered nats.conf does not enable JetStream")
	}
	return ns.ClientURL(), ns.MonitorAddr().String()
}

func onlyContainer(t *testing.T, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	return onlyContainerOf(t, d.Name, d.Spec.Template.Spec.Containers)
}

func onlyContainerOf(t *testing.T, name string, cs []corev1.Container) *corev1.Container {
	t.Helper()
	if len(cs) != 1 {
		t.Fatalf("%s has %d containers, want 1", name, len(cs))
	}
	return &cs[0]
}

// containerPort resolves a named or numeric port of d's container; 0 if undeclared.
func containerPort(t *testing.T, d *appsv1.Deployment, port string) int32 {
	t.Helper()
	for _, p := range onlyContainer(t, d).Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return p.ContainerPort
		}
	}
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// stop ends a process as the kubelet would: SIGTERM, then SIGKILL after a
// grace period. A service the broker refused something (its user's
// permissions lack what its catalog row needs) fails the test.
func stop(t *testing.T, p *process) {
	if b, err := os.ReadFile(p.log); err == nil && bytes.Contains(b, []byte("Permissions Violation")) {
		t.Errorf("the broker refused %s something it needs:\n%s", p.name, grep(b, "Permissions Violation"))
	}
	if t.Failed() {
		if b, err := os.ReadFile(p.log); err == nil {
			t.Logf("log of %s:\n%s", p.name, tail(b, 40))
		}
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// grep returns the lines of b that contain s.
func grep(b []byte, s string) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it succeeds, failing early if p exits.
func waitFor(t *testing.T, p *process, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited (%v) before its %s answered:\n%s", p.name, p.cmd.ProcessState, what, tail(b, 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%s: %s still failing after %s: %v", p.name, what, timeout, err)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func status(u string, want int) error {
	res, err := httpClient.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("GET %s: %d, want %d: %s", u, res.StatusCode, want, b)
	}
	return nil
}

func get(t *testing.T, u string, want int) {
	t.Helper()
	if err := status(u, want); err != nil {
		t.Fatal(err)
	}
}

// call sends a JSON request and decodes the JSON answer into out.
func call(t *testing.T, method, u, token, idemKey string, body, out any, want int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, u, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, u, b, err)
		}
	}
}

// driveOrder registers, logs in and orders through the gateway, and waits
// for the order.confirmed event to reach the user service (points).
func driveOrder(t *testing.T, gateway string) {
	t.Helper()
	creds := map[string]string{"email": "wiring@example.com", "name": "Wiring", "password": "correct-horse"}
	var user struct{ ID string }
	call(t, "POST", gateway+"/api/user/users", "", "", creds, &user, 201)
	var login struct{ Token string }
	call(t, "POST", gateway+"/api/user/login", "", "", map[string]string{"email": creds["email"], "password": creds["password"]}, &login, 200)
	if login.Token == "" {
		t.Fatal("login returned no token")
	}
	var order struct {
		ID, Status string
	}
	call(t, "POST", gateway+"/api/order/orders", login.Token, "wiring-1", map[string]any{
		"items":         []map[string]any{{"productId": "monitor", "quantity": 1}},
		"paymentMethod": "card", "shippingAddress": "1 Main St",
	}, &order, 201)
	if order.Status != "confirmed" {
		t.Fatalf("order %s is %q, want confirmed", order.ID, order.Status)
	}
	// The order.confirmed event crosses the broker to the user service.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pts struct{ Points int64 }
		call(t, "GET", gateway+"/api/user/users/"+user.ID+"/points", login.Token, "", nil, &pts, 200)
		if pts.Points > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no points credited 20s after the order was confirmed: order.confirmed did not reach the user service")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// driveAdmin logs in as the first admin of the rendered <p>-admin Secret,
// which the issuers ensured at start with the rendered signing key: its
// token carries the admin role and works through the gateway until it is
// signed out.
func driveAdmin(t *testing.T, gateway string, r *rendered, loginPath string) {
	t.Helper()
	a := render.AdminFromSecret(r.secrets[render.AdminSecretName(r.pf)])
	var login struct{ Token string }
	call(t, "POST", gateway+loginPath, "", "", map[string]string{"email": a.Email, "password": a.Password}, &login, 200)
	payload := strings.Split(login.Token, ".")
	if len(payload) != 3 {
		t.Fatalf("the admin's token %q is not a JWT", login.Token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub   string   `json:"sub"`
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil || !slices.Contains(claims.Roles, "admin") {
		t.Fatalf("the first admin's token says %s", raw)
	}
	service := strings.Split(strings.TrimPrefix(loginPath, "/api/"), "/")[0]
	own := map[string]string{"user": "/api/user/users/", "account": "/api/account/accounts/"}[service] + claims.Sub
	call(t, "GET", gateway+own, login.Token, "", nil, nil, 200)
	// The console, as rendered: every service ready on its ops port, and
	// the broker's streams read on its monitor (BROKER_MONITOR_URL).
	var snap struct {
		Services []struct {
			Name             string
			Ready, Instances int
		}
		Broker struct {
			Error   string
			Streams []struct{ Name string }
		}
	}
	call(t, "GET", gateway+"/console/api/snapshot", login.Token, "", nil, &snap, 200)
	if len(snap.Broker.Streams) == 0 || snap.Broker.Error != "" {
		t.Errorf("the console's broker: %+v", snap.Broker)
	}
	for _, s := range snap.Services {
		if s.Ready != 1 || s.Instances != 1 {
			t.Errorf("the console's %s: %d of %d ready", s.Name, s.Ready, s.Instances)
		}
	}
	call(t, "POST", gateway+"/api/"+service+"/logout", login.Token, "", nil, nil, 204)
	call(t, "GET", gateway+own, login.Token, "", nil, nil, 401)
}

var (
	buildOnce          sync.Once
	buildErr           error
	builtDir, builtBin string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		_ = os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// buildSwitchboard builds the services binary once per test binary run.
func buildSwitchboard(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		builtDir = dir
		builtBin = filepath.Join(dir, "switchboard")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/switchboard")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/switchboard: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}
