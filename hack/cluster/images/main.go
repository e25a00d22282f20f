// Command images builds the local cluster's container images without a
// Docker engine, with go-containerregistry, and writes each as a tarball that
// `ctr -n k8s.io images import` loads.
//
//	images -ref NAME:TAG -o OUT.tar -bin /path/to/binary [-bin ...] [-entrypoint /binary] [-user UID:GID]
//	images -switchboard -ref NAME:TAG -o OUT.tar -bin-dir DIR
//
// -switchboard builds the Dockerfile's image, as hack/cluster/imagespec
// describes it (a test in the main module compares that with the Dockerfile):
// DIR/manager and DIR/switchboard at the root of a distroless-like base,
// user 65532:65532, entrypoint /manager and the Dockerfile's labels.
// Every other image is the same base with the given static binaries at /.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/switchboard-dev/switchboard/hack/cluster/imagespec"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// epoch makes the layers reproducible: the same binaries give the same digest.
var epoch = time.Unix(0, 0).UTC()

func main() {
	var (
		ref         = flag.String("ref", "", "image reference, e.g. switchboard.local/nats:2.15.2")
		out         = flag.String("o", "", "output tarball")
		switchboard = flag.Bool("switchboard", false, "build the Dockerfile's image from -bin-dir")
		binDir      = flag.String("bin-dir", "", "directory with manager and switchboard (with -switchboard)")
		entrypoint  = flag.String("entrypoint", "", "entrypoint (default: the first -bin at /)")
		user        = flag.String("user", "", "user uid:gid (default: none, i.e. root unless the pod says otherwise)")
		certs       = flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to copy into the base, if it exists")
		bins        multi
		labels      multi
	)
	flag.Var(&bins, "bin", "a static binary to put at /<basename> (repeatable)")
	flag.Var(&labels, "label", "key=value label (repeatable)")
	flag.Parse()
	if *ref == "" || *out == "" {
		log.Fatal("-ref and -o are required")
	}

	spec := imagespec.Image{Env: imagespec.DistrolessEnv(), WorkingDir: "/"}
	if *switchboard {
		if *binDir == "" {
			log.Fatal("-switchboard needs -bin-dir")
		}
		spec = imagespec.Switchboard()
		bins = nil
		for _, b := range spec.Binaries {
			bins = append(bins, filepath.Join(*binDir, b))
		}
	} else {
		if len(bins) == 0 {
			log.Fatal("at least one -bin is required")
		}
		spec.User = *user
		spec.Entrypoint = []string{"/" + filepath.Base(bins[0])}
		if *entrypoint != "" {
			spec.Entrypoint = []string{*entrypoint}
		}
		spec.Labels = map[string]string{}
		for _, l := range labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				log.Fatalf("-label %q: want key=value", l)
			}
			spec.Labels[k] = v
		}
	}
	if err := build(*ref, *out, spec, bins, *certs); err != nil {
		log.Fatal(err)
	}
}

func build(ref, out string, spec imagespec.Image, bins []string, certs string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	base, err := baseLayer(certs)
	if err != nil {
		return err
	}
	app, err := binLayer(bins)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.User = spec.User
	cf.Config.Entrypoint = slices.Clone(spec.Entrypoint)
	cf.Config.Cmd = nil
	cf.Config.Env = slices.Clone(spec.Env)
	cf.Config.WorkingDir = spec.WorkingDir
	cf.Config.Labels = spec.Labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("%s %s %s\n", ref, d, out)
	return os.Rename(tmp, out)
}

func layerFrom(write func(*tar.Writer) error) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := write(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func baseLayer(certs string) (v1.Layer, error) {
	return layerFrom(func(tw *tar.Writer) error {
		files := imagespec.Base()
		if b, err := os.ReadFile(certs); err == nil {
			files = append(files,
				imagespec.BaseFile{Path: "etc/ssl", Dir: true, Mode: 0o755},
				imagespec.BaseFile{Path: "etc/ssl/certs", Dir: true, Mode: 0o755},
				imagespec.BaseFile{Path: "etc/ssl/certs/ca-certificates.crt", Mode: 0o644, Body: string(b)})
		}
		for _, f := range files {
			h := &tar.Header{Name: f.Path, Mode: f.Mode, ModTime: epoch, Uid: f.UID, Gid: f.UID, Format: tar.FormatPAX}
			if f.Dir {
				h.Typeflag, h.Name = tar.TypeDir, f.Path+"/"
			} else {
				h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Body))
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if !f.Dir {
				if _, err := io.WriteString(tw, f.Body); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func binLayer(bins []string) (v1.Layer, error) {
	return layerFrom(func(tw *tar.Writer) error {
		for _, p := range bins {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := &tar.Header{Name: filepath.Base(p), Mode: 0o755, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}
