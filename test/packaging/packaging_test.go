package packaging

import (
	"bytes"
	"encoding/base64"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/internal/render"
)

// TestChartMatchesConfig: the chart ships the same CRD and RBAC rules that
// controller-gen writes to config/ (`make chart-sync` copies them).
func TestChartMatchesConfig(t *testing.T) {
	for src, dst := range map[string]string{
		"config/crd/bases/platform.switchboard.dev_platforms.yaml": "charts/switchboard/crds/platform.switchboard.dev_platforms.yaml",
		"config/rbac/role.yaml":                 "charts/switchboard/files/rbac/role.yaml",
		"config/rbac/leader_election_role.yaml": "charts/switchboard/files/rbac/leader_election_role.yaml",
	} {
		if !bytes.Equal(readFile(t, src), readFile(t, dst)) {
			t.Errorf("%s differs from %s: run `make chart-sync` and commit", dst, src)
		}
	}
}

// TestPodSecurityWarningsAreSeen proves the check the other tests rely on:
// a workload short of Pod Security "restricted" draws a warning.
func TestPodSecurityWarningsAreSeen(t *testing.T) {
	ns := newNamespace(t, "pss-check")
	dep := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "lax", "namespace": ns},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app": "lax"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "lax"}},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}},
			},
		},
	}}
	warnings.take()
	if err := k8s.Create(testCtx, dep, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) == 0 || !strings.Contains(strings.Join(w, " "), "restricted") {
		t.Fatalf("no Pod Security warning for a lax Deployment (warnings: %q); the apply checks would miss violations", w)
	}
}

// TestHelmTemplateIsAccepted installs the chart's output, every optional
// part the API server knows on, and checks the parts it cannot know
// (Prometheus Operator kinds) render.
func TestHelmTemplateIsAccepted(t *testing.T) {
	ns := newNamespace(t, "helm-template")
	out := helmTemplate(t, "tpl", ns,
		"platform.create=true", "platform.name=tpl", "grafanaDashboard.enabled=true", "image.tag=v9.9.9",
		"broker.defaultImage=mirror.example/nats:2.15.2")
	objs := decode(t, out)
	want := map[string]int{
		"CustomResourceDefinition": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1,
		"RoleBinding": 1, "Deployment": 1, "Service": 1, "ConfigMap": 1, "Platform": 1,
	}
	if got := kinds(objs); !equalCounts(got, want) {
		t.Errorf("helm template kinds: %v, want %v", got, want)
	}
	apply(t, k8s, objs, ns, persist)

	dep := find(objs, "Deployment")[0]
	c := container(t, dep)
	if c["image"] != "ghcr.io/switchboard-dev/switchboard:v9.9.9" {
		t.Errorf("operator image %v", c["image"])
	}
	for _, a := range []string{"--leader-elect=true", "--services-image=ghcr.io/switchboard-dev/switchboard:v9.9.9", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8080",
		"--default-broker-image=mirror.example/nats:2.15.2"} {
		if !contains(c["args"], a) {
			t.Errorf("operator args %v lack %s", c["args"], a)
		}
	}
	t.Run("without broker.defaultImage the operator keeps its own default", func(t *testing.T) {
		c := container(t, find(decode(t, helmTemplate(t, "nobroker", ns)), "Deployment")[0])
		for _, a := range c["args"].([]any) {
			if strings.HasPrefix(a.(string), "--default-broker-image") {
				t.Errorf("operator args carry %s without broker.defaultImage", a)
			}
		}
	})

	t.Run("the monitoring kinds render when enabled", func(t *testing.T) {
		objs := decode(t, helmTemplate(t, "mon", ns, "metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"))
		if k := kinds(objs); k["ServiceMonitor"] != 1 || k["PodMonitor"] != 2 {
			t.Errorf("kinds %v, want a ServiceMonitor and two PodMonitors (services, broker)", k)
		}
		// Each PodMonitor scrapes a port its pods declare: the services'
		// ops, the broker sidecar's metrics (internal/render).
		ports := map[string]string{}
		for _, pm := range find(objs, "PodMonitor") {
			eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
			component, _, _ := unstructured.NestedString(pm.Object, "spec", "selector", "matchLabels", "app.kubernetes.io/component")
			for _, ep := range eps {
				ports[component] += ep.(map[string]any)["port"].(string)
			}
		}
		if want := map[string]string{"": render.PortNameOps, render.ComponentBroker: render.PortNameMetrics}; !maps.Equal(ports, want) {
			t.Errorf("PodMonitor ports by selected component %v, want %v", ports, want)
		}
	})
	t.Run("values.schema.json refuses a bad value", func(t *testing.T) {
		cmd := exec.Command(helmBin, "template", "bad", filepath.Join(root, "charts", "switchboard"), "--set", "replicaCount=0")
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "replicaCount") {
			t.Errorf("helm template --set replicaCount=0: err %v, output %s", err, out)
		}
	})
}

// TestKustomizeConfigIsAccepted renders config/default (what `make deploy`
// applies) and applies it.
func TestKustomizeConfigIsAccepted(t *testing.T) {
	out := kustomizeBuild(t, "default")
	objs := decode(t, out)
	if k := kinds(objs); k["Namespace"] != 1 || k["Deployment"] != 1 || k["ClusterRole"] != 1 || k["CustomResourceDefinition"] != 1 {
		t.Fatalf("kustomize output kinds %v", k)
	}
	// `make deploy` substitutes the image; do the same.
	out = bytes.ReplaceAll(out, []byte("controller:latest"), []byte("ghcr.io/switchboard-dev/switchboard:test"))
	objs = decode(t, out)
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			// The kustomize Namespace enforces "restricted"; make it warn too.
			labels := u.GetLabels()
			labels["pod-security.kubernetes.io/warn"] = "restricted"
			u.SetLabels(labels)
		}
	}
	apply(t, k8s, objs, "", persist)
}

// kustomizeBuild renders config/<dir> with kustomize (or kubectl
// kustomize), or skips the test when neither is there.
func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	if bin, err := tool("KUSTOMIZE", "kustomize", filepath.Join(root, "bin", "kustomize")); err == nil {
		return run(t, nil, bin, "build", filepath.Join(root, "config", dir))
	} else if kubectl, kerr := exec.LookPath("kubectl"); kerr == nil {
		return run(t, nil, kubectl, "kustomize", filepath.Join(root, "config", dir))
	} else {
		t.Skipf("neither kustomize nor kubectl found (%v); `make test` builds kustomize into ./bin", err)
	}
	return nil
}

// TestRenderOutputIsAccepted: `switchboard render -f config/samples/platform.yaml`
// round-trips through the API server.
func TestRenderOutputIsAccepted(t *testing.T) {
	bin := switchboardBinary(t)
	ns := newNamespace(t, "render")
	sample := filepath.Join(root, "config", "samples", "platform.yaml")
	out := run(t, nil, bin, "render", "-f", sample, "--namespace", ns)
	objs := decode(t, out)
	// Secrets: the broker's, the token keys, the admin and the CA, then a
	// certificate per service (11) and a broker user per service but the
	// gateway (10).
	if k := kinds(objs); k["Deployment"] != 11 || k["StatefulSet"] != 1 || k["Secret"] != 25 {
		t.Errorf("render kinds %v, want 11 Deployments, a StatefulSet and 25 Secrets (broker, token keys, admin, CA, 11 certificates, 10 broker users)", k)
	}
	apply(t, k8s, objs, ns, dryRun)

	t.Run("piped to kubectl apply --dry-run=server", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl is not on PATH; the server-side dry run above covers the same ground")
		}
		kubeconfig := writeKubeconfig(t)
		res := run(t, bytes.NewReader(out), kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
		if n := strings.Count(string(res), "(server dry run)"); n != len(objs) {
			t.Errorf("kubectl applied %d of %d objects:\n%s", n, len(objs), res)
		}
	})
}

func container(t *testing.T, dep *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%s has %d containers", dep.GetName(), len(cs))
	}
	return cs[0].(map[string]any)
}

func contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// writeKubeconfig writes a kubeconfig for the envtest API server.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: envtest\n  cluster:\n    server: " + cfg.Host +
		"\n    certificate-authority-data: " + b64(cfg.CAData) +
		"\nusers:\n- name: admin\n  user:\n    client-certificate-data: " + b64(cfg.CertData) +
		"\n    client-key-data: " + b64(cfg.KeyData) +
		"\ncontexts:\n- name: envtest\n  context: {cluster: envtest, user: admin}\ncurrent-context: envtest\n"
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
