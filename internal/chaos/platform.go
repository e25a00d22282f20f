package chaos

import (
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/loopback"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/internal/testgen"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// The Platform the harness renders and runs.
const (
	platformName = "chaos"
	namespace    = "chaos"
	// servicesImage stands for the switchboard binary built for the run.
	servicesImage = "switchboard.test/switchboard:chaos"
	// imageBinary is the services image's binary, which the rendered
	// Deployments' command names.
	imageBinary = "/switchboard"
	// brokerService is the pseudo service name of the broker's pods.
	brokerService = "nats"
	// brokerContainer is the broker pod's server container; its metrics
	// sidecar is not run (nothing here scrapes it).
	brokerContainer = "nats"
)

// Replicas of the commerce workload's services: two of the saga's
// participants, which the faults kill, one of the others.
var Replicas = map[string]int32{
	"order": 2, "product": 2, "payment": 2,
	"user": 1, "notification": 1, catalog.Gateway: 1,
}

// rendered is one render of the chaos Platform, indexed by kind.
type rendered struct {
	pf           *v1alpha1.Platform
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
}

// renderPlatform renders the commerce Platform the way the operator does,
// with freshly kept secrets (render.KeepSecrets), so the run gets the
// production broker config (its users and permissions), certificates and
// token keys.
func renderPlatform() (*rendered, error) {
	opts := []testgen.PlatformOption{
		testgen.WithNamespace(namespace), testgen.WithWorkloads(v1alpha1.WorkloadCommerce),
		testgen.WithImage(servicesImage), testgen.WithNetworkPolicy(false),
	}
	for _, name := range slices.Sorted(maps.Keys(Replicas)) {
		opts = append(opts, testgen.WithService(name, testgen.Replicas(Replicas[name]), testgen.AutoscalingOff()))
	}
	p := testgen.Platform(platformName, opts...)
	kept, err := render.KeepSecrets(p, nil, nil, rand.Reader, time.Now())
	if err != nil {
		return nil, err
	}
	objs, err := render.Platform(p, kept)
	if err != nil {
		return nil, err
	}
	r := &rendered{pf: p, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			r.deployments = append(r.deployments, o)
		case *appsv1.StatefulSet:
			r.statefulSets = append(r.statefulSets, o)
		case *corev1.Service:
			r.services = append(r.services, o)
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		}
	}
	if len(r.deployments) == 0 || len(r.statefulSets) != 1 {
		return nil, fmt.Errorf("render gave %d Deployments and %d StatefulSets, want a broker and services", len(r.deployments), len(r.statefulSets))
	}
	return r, nil
}

// workload is a rendered Deployment or StatefulSet, as far as the harness
// runs it.
type workload struct {
	name      string
	service   string
	replicas  int32
	template  corev1.PodTemplateSpec
	container corev1.Container
	claims    []corev1.PersistentVolumeClaim
}

func (r *rendered) workloads() ([]workload, error) {
	var out []workload
	for _, s := range r.statefulSets {
		c, ok := containerNamed(s.Spec.Template.Spec.Containers, brokerContainer)
		if !ok {
			return nil, fmt.Errorf("StatefulSet %s has no %q container", s.Name, brokerContainer)
		}
		out = append(out, workload{name: s.Name, service: brokerService, replicas: deref(s.Spec.Replicas, 1),
			template: s.Spec.Template, container: c, claims: s.Spec.VolumeClaimTemplates})
	}
	for _, d := range r.deployments {
		if len(d.Spec.Template.Spec.Containers) != 1 {
			return nil, fmt.Errorf("Deployment %s has %d containers, want 1", d.Name, len(d.Spec.Template.Spec.Containers))
		}
		c := d.Spec.Template.Spec.Containers[0]
		if _, ok := catalog.Lookup(c.Name); !ok {
			return nil, fmt.Errorf("Deployment %s runs container %q, which is no catalog service", d.Name, c.Name)
		}
		out = append(out, workload{name: d.Name, service: c.Name, replicas: deref(d.Spec.Replicas, 1),
			template: d.Spec.Template, container: c})
	}
	return out, nil
}

func containerNamed(cs []corev1.Container, name string) (corev1.Container, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return corev1.Container{}, false
}

func deref(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// cluster is the rendered Platform laid out on loopback: a pod per
// replica, each container port a loopback port, and a route per Service
// port (a proxy in front of a replicated workload, the pod's own port for
// a single one).
type cluster struct {
	dir     string
	r       *rendered
	bins    Binaries
	extra   map[string]map[string]string // service → env set on top of the rendered env
	pods    []*pod
	proxies []*proxy
	// routes maps every in-cluster host:port a Service answers on to the
	// loopback host:port behind it.
	routes map[string]string
	// brokerEnv is the broker pod's resolved env: the route credentials,
	// which are also the broker's administrative user.
	brokerEnv map[string]string
}

// layout allocates ports and proxies and assembles every pod; nothing is
// started.
func layout(dir string, r *rendered, bins Binaries, extra map[string]map[string]string) (*cluster, error) {
	c := &cluster{dir: dir, r: r, bins: bins, extra: extra, routes: map[string]string{}}
	wls, err := r.workloads()
	if err != nil {
		return nil, err
	}
	type placed struct {
		wl  workload
		pod *pod
	}
	var all []placed
	for _, wl := range wls {
		for i := range wl.replicas {
			p := &pod{name: fmt.Sprintf("%s-%d", wl.name, i), service: wl.service, ports: map[string]int{},
				logPath: filepath.Join(dir, "logs", fmt.Sprintf("%s-%d.log", wl.name, i))}
			for _, cp := range wl.container.Ports {
				port, err := loopback.FreePort()
				if err != nil {
					return nil, err
				}
				p.ports[cp.Name] = port
			}
			all = append(all, placed{wl, p})
			c.pods = append(c.pods, p)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, err
	}

	// Services: the pods each selects, and where each of its ports goes.
	for _, s := range r.services {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var chosen []placed
		for _, pl := range all {
			if sel.Matches(labels.Set(pl.wl.template.Labels)) {
				chosen = append(chosen, pl)
			}
		}
		if len(chosen) == 0 {
			return nil, fmt.Errorf("Service %s selects no rendered pod", s.Name)
		}
		for _, sp := range s.Spec.Ports {
			var backends []*backend
			for _, pl := range chosen {
				port, ok := podPort(pl.wl.container, pl.pod, sp.TargetPort.String())
				if !ok {
					return nil, fmt.Errorf("Service %s targets port %q, which %s does not declare", s.Name, sp.TargetPort.String(), pl.wl.name)
				}
				backends = append(backends, &backend{pod: pl.pod, addr: net.JoinHostPort("127.0.0.1", itoa(port))})
			}
			to := backends[0].addr
			if len(backends) > 1 {
				port, err := loopback.FreePort()
				if err != nil {
					return nil, err
				}
				px, err := newProxy(fmt.Sprintf("%s:%d", s.Name, sp.Port), port, backends)
				if err != nil {
					return nil, err
				}
				c.proxies = append(c.proxies, px)
				to = px.Addr()
			}
			for _, host := range serviceHosts(s) {
				c.routes[net.JoinHostPort(host, itoa(int(sp.Port)))] = to
			}
		}
	}

	for _, pl := range all {
		if err := c.assemble(pl.wl, pl.pod); err != nil {
			return nil, fmt.Errorf("%s: %w", pl.pod.name, err)
		}
	}
	return c, nil
}

// serviceHosts are the names a Service answers to in cluster DNS.
func serviceHosts(s *corev1.Service) []string {
	return []string{s.Name, s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc",
		s.Name + "." + s.Namespace + ".svc." + render.ClusterDomain}
}

// podPort resolves a named or numeric container port to the pod's loopback port.
func podPort(c corev1.Container, p *pod, port string) (int, bool) {
	for _, cp := range c.Ports {
		if cp.Name == port || strconv.Itoa(int(cp.ContainerPort)) == port {
			lp, ok := p.ports[cp.Name]
			return lp, ok
		}
	}
	return 0, false
}

// assemble is the one place a pod's process is put together, doing the
// kubelet's part for what was rendered: the binary standing in for the
// container's image; env from values, Secrets, ConfigMaps and the
// downward API, with $(VAR) expanded; every volume written to a directory
// of the pod (Secrets and ConfigMaps as files, claims and emptyDirs as
// directories that outlive a restart); and, since there is no pod network
// or mount namespace here, three rewrites applied to env, args and mounted
// config files alike: container ports to the pod's loopback ports, mount
// paths to the pod's directories, and in-cluster Service addresses to
// where the harness routes them. Last come the harness's own settings
// (extra), such as a short saga lease.
func (c *cluster) assemble(wl workload, p *pod) error {
	ct := wl.container
	switch {
	case wl.service == brokerService && len(ct.Command) == 0:
		p.bin = c.bins.NATSServer
	case ct.Image == servicesImage && slices.Equal(ct.Command, []string{imageBinary}):
		p.bin = c.bins.Switchboard
	default:
		return fmt.Errorf("container %s runs %q %q, which the harness has no binary for", ct.Name, ct.Image, ct.Command)
	}

	// Volumes first: env, args and files may name their mount paths.
	mounts := map[string]string{} // mount path → pod directory
	podDir := filepath.Join(c.dir, "pods", p.name)
	type file struct {
		path, content string
		rewrite       bool
	}
	var files []file
	for _, m := range ct.VolumeMounts {
		dir := filepath.Join(podDir, "volumes", m.Name)
		target := dir
		if m.SubPath != "" {
			target = filepath.Join(dir, m.SubPath)
		}
		mounts[m.MountPath] = target
		src, err := c.volumeSource(wl, m.Name)
		if err != nil {
			return err
		}
		for name, content := range src.files {
			files = append(files, file{filepath.Join(dir, name), content, src.rewrite})
		}
		if err := os.MkdirAll(target, 0o700); err != nil {
			return err
		}
	}
	rw := rewriter{c: c, pod: p, container: ct, mounts: mounts}

	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	for _, ef := range ct.EnvFrom {
		vals, err := c.envFrom(ef)
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(vals)) {
			set(ef.Prefix+k, vals[k])
		}
	}
	for _, e := range ct.Env {
		v, err := c.envValue(e, p)
		if err != nil {
			return fmt.Errorf("env %s: %w", e.Name, err)
		}
		if e.ValueFrom == nil {
			v = expand(v, env)
		}
		if v, err = rw.value(v); err != nil {
			return fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	for _, k := range slices.Sorted(maps.Keys(c.extra[wl.service])) {
		set(k, c.extra[wl.service][k])
	}
	p.env = nil
	for _, k := range order {
		p.env = append(p.env, k+"="+env[k])
	}
	if wl.service == brokerService {
		c.brokerEnv = env
	}

	p.args = nil
	for _, a := range ct.Args {
		v, err := rw.value(expand(a, env))
		if err != nil {
			return fmt.Errorf("arg %q: %w", a, err)
		}
		p.args = append(p.args, v)
	}
	for _, f := range files {
		content := f.content
		if f.rewrite {
			content = rw.text(content)
		}
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
			return err
		}
	}

	pr := ct.ReadinessProbe
	if pr == nil || pr.HTTPGet == nil {
		return fmt.Errorf("container %s has no HTTP readiness probe", ct.Name)
	}
	port, ok := podPort(ct, p, pr.HTTPGet.Port.String())
	if !ok {
		return fmt.Errorf("readiness probe on port %q, which container %s does not declare", pr.HTTPGet.Port.String(), ct.Name)
	}
	p.probe = &probe{
		url:       fmt.Sprintf("http://127.0.0.1:%d%s", port, pr.HTTPGet.Path),
		period:    seconds(pr.PeriodSeconds, 10),
		timeout:   seconds(pr.TimeoutSeconds, 1),
		failures:  int(max(pr.FailureThreshold, 1)),
		successes: int(max(pr.SuccessThreshold, 1)),
	}
	if strings.EqualFold(string(pr.HTTPGet.Scheme), "https") {
		return fmt.Errorf("container %s: HTTPS readiness probes are not supported", ct.Name)
	}
	return nil
}

func seconds(n, def int32) time.Duration {
	if n <= 0 {
		n = def
	}
	return time.Duration(n) * time.Second
}

// volume is what a pod sees in one volume.
type volume struct {
	files map[string]string
	// rewrite: the files are configuration (a ConfigMap), whose addresses
	// and paths are rewritten like env; key material is copied verbatim.
	rewrite bool
}

func (c *cluster) volumeSource(wl workload, name string) (volume, error) {
	for _, claim := range wl.claims {
		if claim.Name == name {
			return volume{}, nil // a directory of the pod's own, kept across restarts
		}
	}
	for _, v := range wl.template.Spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.EmptyDir != nil:
			return volume{}, nil
		case v.Secret != nil:
			files, err := c.secretFiles(v.Secret.SecretName, v.Secret.Items)
			return volume{files: files}, err
		case v.ConfigMap != nil:
			files, err := c.configMapFiles(v.ConfigMap.Name, v.ConfigMap.Items)
			return volume{files: files, rewrite: true}, err
		case v.Projected != nil:
			out := volume{files: map[string]string{}}
			for _, src := range v.Projected.Sources {
				var files map[string]string
				var err error
				switch {
				case src.Secret != nil:
					files, err = c.secretFiles(src.Secret.Name, src.Secret.Items)
				case src.ConfigMap != nil:
					files, err = c.configMapFiles(src.ConfigMap.Name, src.ConfigMap.Items)
				default:
					err = fmt.Errorf("projected volume %s: unsupported source %+v", name, src)
				}
				if err != nil {
					return volume{}, err
				}
				maps.Copy(out.files, files)
			}
			return out, nil
		}
		return volume{}, fmt.Errorf("volume %s: unsupported source", name)
	}
	return volume{}, fmt.Errorf("volume %s is mounted but not declared", name)
}

func (c *cluster) secretFiles(name string, items []corev1.KeyToPath) (map[string]string, error) {
	s, ok := c.r.secrets[name]
	if !ok {
		return nil, fmt.Errorf("Secret %s is not rendered", name)
	}
	data := map[string]string{}
	for k, v := range s.Data {
		data[k] = string(v)
	}
	maps.Copy(data, s.StringData)
	return project(data, items, "Secret "+name)
}

func (c *cluster) configMapFiles(name string, items []corev1.KeyToPath) (map[string]string, error) {
	cm, ok := c.r.configMaps[name]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s is not rendered", name)
	}
	return project(cm.Data, items, "ConfigMap "+name)
}

func project(data map[string]string, items []corev1.KeyToPath, what string) (map[string]string, error) {
	if len(items) == 0 {
		return maps.Clone(data), nil
	}
	out := map[string]string{}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return nil, fmt.Errorf("%s has no key %q", what, it.Key)
		}
		out[it.Path] = v
	}
	return out, nil
}

func (c *cluster) envFrom(ef corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case ef.SecretRef != nil:
		return c.secretFiles(ef.SecretRef.Name, nil)
	case ef.ConfigMapRef != nil:
		return c.configMapFiles(ef.ConfigMapRef.Name, nil)
	}
	return nil, fmt.Errorf("envFrom: unsupported source %+v", ef)
}

func (c *cluster) envValue(e corev1.EnvVar, p *pod) (string, error) {
	vf := e.ValueFrom
	switch {
	case vf == nil:
		return e.Value, nil
	case vf.SecretKeyRef != nil:
		files, err := c.secretFiles(vf.SecretKeyRef.Name, nil)
		if err != nil {
			return "", err
		}
		v, ok := files[vf.SecretKeyRef.Key]
		if !ok {
			return "", fmt.Errorf("Secret %s has no key %q", vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
		}
		return v, nil
	case vf.ConfigMapKeyRef != nil:
		files, err := c.configMapFiles(vf.ConfigMapKeyRef.Name, nil)
		if err != nil {
			return "", err
		}
		v, ok := files[vf.ConfigMapKeyRef.Key]
		if !ok {
			return "", fmt.Errorf("ConfigMap %s has no key %q", vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
		}
		return v, nil
	case vf.FieldRef != nil:
		switch vf.FieldRef.FieldPath {
		case "metadata.name":
			return p.name, nil
		case "metadata.namespace":
			return namespace, nil
		case "status.podIP":
			return "127.0.0.1", nil
		}
		return "", fmt.Errorf("unsupported fieldRef %s", vf.FieldRef.FieldPath)
	case vf.ResourceFieldRef != nil:
		return "0", nil
	}
	return "", fmt.Errorf("unsupported source %+v", vf)
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand substitutes $(VAR) from the variables defined so far, as the
// kubelet does; an unknown reference stays as written.
func expand(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// rewriter maps a pod's view of the world (container ports, mount paths,
// Service names) to the harness's loopback layout.
type rewriter struct {
	c         *cluster
	pod       *pod
	container corev1.Container
	mounts    map[string]string
}

// listenAddr matches a listen address on every interface, or on none named.
var listenAddr = regexp.MustCompile(`^(0\.0\.0\.0)?:(\d+)$`)

// value rewrites one env value or argument: a listen address on a
// container port, a path under a mount, or in-cluster addresses (a comma
// list of URLs, dns:/// targets or host:port).
func (rw rewriter) value(v string) (string, error) {
	if m := listenAddr.FindStringSubmatch(v); m != nil {
		if port, ok := podPort(rw.container, rw.pod, m[2]); ok {
			return "127.0.0.1:" + itoa(port), nil
		}
	}
	if p, ok := rw.path(v); ok {
		return p, nil
	}
	if !strings.Contains(v, ".svc") && !rw.namesService(v) {
		return v, nil
	}
	parts := strings.Split(v, ",")
	for i, part := range parts {
		out, err := rw.address(strings.TrimSpace(part))
		if err != nil {
			return "", err
		}
		parts[i] = out
	}
	return strings.Join(parts, ","), nil
}

// namesService reports whether v is a URL or host:port naming a rendered
// Service by its short name.
func (rw rewriter) namesService(v string) bool {
	for _, s := range rw.c.r.services {
		if strings.Contains(v, "//"+s.Name+":") || strings.Contains(v, "//"+s.Name+"/") || strings.HasSuffix(v, "//"+s.Name) || strings.HasPrefix(v, s.Name+":") {
			return true
		}
	}
	return false
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "nats": "4222", "tls": "4222"}

// address routes one URL, dns:/// target or host:port to loopback.
func (rw rewriter) address(v string) (string, error) {
	if rest, ok := strings.CutPrefix(v, "dns:///"); ok {
		to, err := rw.route(rest, "")
		return "dns:///" + to, err
	}
	if !strings.Contains(v, "://") {
		return rw.route(v, "")
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", err
	}
	if u.Host, err = rw.route(u.Host, u.Scheme); err != nil {
		return "", err
	}
	return u.String(), nil
}

func (rw rewriter) route(hostport, scheme string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, defaultPorts[scheme]
	}
	to, ok := rw.c.routes[net.JoinHostPort(host, port)]
	if !ok {
		return "", fmt.Errorf("%s names %s:%s, which no rendered Service answers", rw.pod.name, host, port)
	}
	return to, nil
}

// path maps a path under a mount to the pod's directory.
func (rw rewriter) path(v string) (string, bool) {
	for _, mp := range slices.Sorted(maps.Keys(rw.mounts)) {
		if v == mp {
			return rw.mounts[mp], true
		}
		if rest, ok := strings.CutPrefix(v, mp+"/"); ok {
			return filepath.Join(rw.mounts[mp], rest), true
		}
	}
	return "", false
}

// text rewrites a mounted configuration file: listen addresses on every
// interface and a container port, and paths under a mount.
func (rw rewriter) text(s string) string {
	for _, cp := range rw.container.Ports {
		if lp, ok := rw.pod.ports[cp.Name]; ok {
			s = strings.ReplaceAll(s, fmt.Sprintf("0.0.0.0:%d", cp.ContainerPort), "127.0.0.1:"+itoa(lp))
		}
	}
	// Longest mount first, so /data/x is not taken for /data.
	mps := slices.Collect(maps.Keys(rw.mounts))
	slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
	for _, mp := range mps {
		re := regexp.MustCompile(regexp.QuoteMeta(mp) + `(/|"|'|\s|$)`)
		s = re.ReplaceAllString(s, rw.mounts[mp]+"$1")
	}
	return s
}

func itoa(i int) string { return strconv.Itoa(i) }

// URL of a Service port as the harness reaches it, e.g. the gateway's.
func (c *cluster) serviceAddr(service string, port int32) (string, error) {
	name := render.ObjectName(c.r.pf, service)
	if service == brokerService {
		name = render.BrokerName(c.r.pf)
	}
	to, ok := c.routes[net.JoinHostPort(name, itoa(int(port)))]
	if !ok {
		return "", fmt.Errorf("no route to Service %s port %d", name, port)
	}
	return to, nil
}

// podsOf lists the pods of a service (or brokerService).
func (c *cluster) podsOf(service string) []*pod {
	var out []*pod
	for _, p := range c.pods {
		if p.service == service {
			out = append(out, p)
		}
	}
	return out
}

// close stops every pod and proxy.
func (c *cluster) close() {
	for _, p := range c.pods {
		p.Destroy()
	}
	for _, px := range c.proxies {
		px.Close()
	}
}
