package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Binaries are the programs the pods run: the services binary and a
// nats-server built from the module go.mod already requires, standing in
// for the services image and the broker image.
type Binaries struct {
	Switchboard, NATSServer string
}

// Build builds both binaries from the module at repo into dir.
func Build(ctx context.Context, repo, dir string) (Binaries, error) {
	b := Binaries{Switchboard: filepath.Join(dir, "switchboard"), NATSServer: filepath.Join(dir, "nats-server")}
	for _, t := range []struct{ out, pkg string }{
		{b.Switchboard, "./cmd/switchboard"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %v\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// RepoRoot finds the module root at or above dir.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
