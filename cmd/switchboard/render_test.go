package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runRender(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"render"}, args...), &out, &errb)
	return out.String(), err
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const samplePlatform = "../../config/samples/platform.yaml"

func TestRenderSampleIntoANamespace(t *testing.T) {
	out, err := runRender(t, "-f", samplePlatform, "--namespace", "demo", "--image", "example.test/sb:1", "--broker-image", "example.test/nats:2")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: shop-nats\n", "name: shop-gateway\n", "namespace: demo\n", "image: example.test/sb:1\n", "image: example.test/nats:2\n", "kind: Secret\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "namespace: default\n") {
		t.Error("--namespace did not override the default namespace")
	}
}

func TestRenderWithCredentialsIsReproducible(t *testing.T) {
	first, err := runRender(t, "-f", samplePlatform)
	if err != nil {
		t.Fatal(err)
	}
	// The output holds the Secrets of every generated value.
	secret := writeFile(t, "secrets.yaml", first)
	a, err := runRender(t, "-f", samplePlatform, "--credentials", secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := runRender(t, "-f", samplePlatform, "--credentials", secret)
	if a != b || a != first {
		t.Error("rendering with the credentials of an earlier render changed the output")
	}
}

func TestRenderRefusesWhatTheAPIServerWould(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"an unknown field": {
			"apiVersion: platform.switchboard.dev/v1alpha1\nkind: Platform\nmetadata: {name: a}\nspec: {workloads: [commerce], replica: 3}\n",
			`unknown field "replica"`},
		"another kind": {
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "want apiVersion platform.switchboard.dev/v1alpha1, kind Platform"},
		"no workloads": {
			"apiVersion: platform.switchboard.dev/v1alpha1\nkind: Platform\nmetadata: {name: a}\nspec: {}\n", "spec.workloads is empty"},
		"an empty file": {"# nothing\n", "no Platform found"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := runRender(t, "-f", writeFile(t, "p.yaml", tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if out != "" {
				t.Errorf("printed output despite the error:\n%s", out)
			}
		})
	}
}

func TestRenderWithKEDA(t *testing.T) {
	out, err := runRender(t, "-f", samplePlatform, "--keda")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kind: ScaledObject\n") || !strings.Contains(out, "type: nats-jetstream\n") {
		t.Error("--keda rendered no ScaledObject with a nats-jetstream trigger")
	}
	plain, err := runRender(t, "-f", samplePlatform)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain, "kind: ScaledObject\n") {
		t.Error("a ScaledObject without --keda")
	}
}
