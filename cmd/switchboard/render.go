package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// version is stamped at build time with -ldflags "-X main.version=..."
// (hack/build-static.sh); render uses it for the default services image,
// as the operator does for its --services-image.
var version = "dev"

// defaultImageRepo is where release images are published (cmd/manager).
const defaultImageRepo = "ghcr.io/switchboard-dev/switchboard"

// renderCmd prints the manifests the operator would apply for the Platforms
// in a file, with the same render package, for GitOps without an operator.
func renderCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard render -f platform.yaml [--namespace ns] [--image img] [--broker-image img] [--keda] [--credentials secrets.yaml]")
		fmt.Fprintln(stderr, "\nPrints the manifests the operator would apply, like `helm template`:")
		fmt.Fprintln(stderr, "  switchboard render -f config/samples/platform.yaml -n demo | kubectl apply -n demo -f -")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var file, namespace, image, brokerImage, credsFile string
	var keda bool
	fs.StringVar(&file, "f", "", "file holding one or more Platforms (\"-\" reads stdin)")
	fs.StringVar(&file, "filename", "", "same as -f")
	fs.StringVar(&namespace, "namespace", "", "namespace of the Platforms (overrides metadata.namespace; default \"default\")")
	fs.StringVar(&namespace, "n", "", "same as --namespace")
	fs.StringVar(&image, "image", defaultImageRepo+":"+version, "services image when a Platform sets no spec.image (the operator's --services-image)")
	fs.StringVar(&brokerImage, "broker-image", render.DefaultBrokerImage, "broker image when a Platform sets no spec.broker.image (the operator's --default-broker-image)")
	fs.BoolVar(&keda, "keda", false, "render a KEDA ScaledObject instead of an HPA for the services that scale on queue lag, as the operator does where KEDA is installed")
	fs.StringVar(&credsFile, "credentials", "", "a YAML file of Secrets to take the generated secrets from, so repeated renders keep them: <platform>-auth, <platform>-token-signing, <platform>-admin, <platform>-ca and each service's <platform>-<service>-nats and <platform>-<service>-tls (an earlier render's output will do); what it lacks or what is due for renewal is generated")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: render takes no arguments, got %q", errUsage, fs.Args())
	}
	if file == "" {
		return fmt.Errorf("%w: render needs -f platform.yaml", errUsage)
	}

	in, err := readInput(file)
	if err != nil {
		return err
	}
	platforms, err := decodePlatforms(in)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	kept := map[string]*corev1.Secret{}
	if credsFile != "" {
		if kept, err = readSecrets(credsFile); err != nil {
			return err
		}
	}

	var out bytes.Buffer
	for _, p := range platforms {
		if namespace != "" {
			p.Namespace = namespace
		}
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		opts, err := render.KeepSecrets(p, kept, nil, rand.Reader, time.Now())
		if err != nil {
			return err
		}
		opts.ServicesImage, opts.BrokerImage, opts.KEDA = image, brokerImage, keda
		objs, err := render.Platform(p, opts)
		if err != nil {
			return err
		}
		if err := render.WriteYAML(&out, objs); err != nil {
			return err
		}
	}
	// Nothing is written unless every Platform rendered.
	_, err = stdout.Write(out.Bytes())
	return err
}

func readInput(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(file)
}

// decodePlatforms reads every document of a YAML stream. Each must be a
// Platform of this API version; unknown fields are refused, because the API
// server would drop them silently and the render would differ from intent.
func decodePlatforms(in []byte) ([]*v1alpha1.Platform, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(in)))
	var out []*v1alpha1.Platform
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		p := &v1alpha1.Platform{}
		if err := yaml.UnmarshalStrict(doc, p); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if gvk := p.GroupVersionKind(); gvk != v1alpha1.GroupVersion.WithKind("Platform") {
			return nil, fmt.Errorf("document %d: is %s %q, want apiVersion %s, kind Platform", i, gvk.Kind, gvk.GroupVersion(), v1alpha1.GroupVersion)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("document %d: metadata.name is required", i)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no Platform found")
	}
	return out, nil
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// readSecrets returns the Secrets of a YAML stream by name; other
// documents are skipped, so an earlier render's whole output will do.
func readSecrets(file string) (map[string]*corev1.Secret, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]*corev1.Secret{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if tm.Kind != "Secret" {
			continue
		}
		s := &corev1.Secret{}
		if err := yaml.Unmarshal(doc, s); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		// A hand-written Secret may use stringData.
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		out[s.Name] = s
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no Secret found", file)
	}
	return out, nil
}
