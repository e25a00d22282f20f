package testenv

import (
	"errors"
	"os"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// New returns an envtest Environment on the kube-apiserver and etcd that
// `make envtest` builds (found through KUBEBUILDER_ASSETS), with the given
// CRDs. Its Service range is a /16: envtest's default /24 holds 254
// ClusterIPs, and a suite that creates a dozen Platforms of 13 Services each
// runs out of addresses.
func New(crdDirs ...string) (*envtest.Environment, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds kube-apiserver and etcd for envtest")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	return env, nil
}
