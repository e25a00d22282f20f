package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kedaModule is the module whose API types the operator renders
// ScaledObjects with, and whose CRD config/keda holds.
const kedaModule = "github.com/kedacore/keda/v2"

// The vendored CRD is the one of the KEDA module go.mod requires, byte for
// byte, and config/keda/README.md names that version: an upgrade of the
// types cannot leave the tests on an older CRD.
func TestVendoredKEDACRDIsTheModules(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", kedaModule).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", kedaModule, err)
	}
	version, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if dir == "" {
		t.Fatalf("%s %s is not in the module cache: run go mod download", kedaModule, version)
	}
	const crd = "keda.sh_scaledobjects.yaml"
	want, err := os.ReadFile(filepath.Join(dir, "config", "crd", "bases", crd))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, "config", "keda", crd); !bytes.Equal(got, want) {
		t.Errorf("config/keda/%s differs from the one of %s %s: run make keda-crds", crd, kedaModule, version)
	}
	if readme := string(readFile(t, "config", "keda", "README.md")); !strings.Contains(readme, kedaModule+" "+version) {
		t.Errorf("config/keda/README.md does not name %s %s", kedaModule, version)
	}
}
