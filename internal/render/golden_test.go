package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/testgen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fullPlatform is the Platform of ARCHITECTURE.md: both workloads, a
// three-node broker on 10Gi volumes, and one override of each kind.
func fullPlatform() *v1alpha1.Platform {
	return platform("shop",
		testgen.WithNamespace("demo"),
		testgen.WithWorkloads(v1alpha1.WorkloadCommerce, v1alpha1.WorkloadStreaming),
		testgen.WithImage("ghcr.io/switchboard-dev/switchboard:v0.1.0"),
		testgen.WithBrokerReplicas(3),
		testgen.WithStorage(v1alpha1.StorageFile, "10Gi", "fast"),
		testgen.WithGateway(corev1.ServiceTypeClusterIP, 0),
		testgen.WithNetworkPolicy(true),
		testgen.WithDefaultResources(requests("50m", "64Mi")),
		testgen.WithService("order", testgen.Replicas(2)),
		testgen.WithService("playback", testgen.Autoscaling(2, 20, 60)),
		testgen.WithService("recommendation", testgen.Disabled()),
	)
}

func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	opts := testOptions()
	opts.OperatorNamespace = "switchboard-system"
	if err := WriteYAML(&buf, mustRenderWith(t, fullPlatform(), opts)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "full-platform.golden.yaml")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("rendered YAML differs from %s; review the change and run go test ./internal/render -update\n%s",
			path, firstDiff(buf.String(), string(want)))
	}
}

// firstDiff shows the first differing line with a little context.
func firstDiff(got, want string) string {
	g, w := bytes.Split([]byte(got), []byte("\n")), bytes.Split([]byte(want), []byte("\n"))
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl []byte
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if !bytes.Equal(gl, wl) {
			return "line " + itoa(int32(i+1)) + ":\n  got:  " + string(gl) + "\n  want: " + string(wl)
		}
	}
	return ""
}
