package testenv

import (
	"net/http"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RoundTripFunc is an http.RoundTripper made of a function.
type RoundTripFunc func(*http.Request) (*http.Response, error)

func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ClientThrough returns a client whose every request to the API server
// passes through wrap (to count or record them), and the rest.Config it
// uses, for other clients that should be seen too.
func ClientThrough(cfg *rest.Config, scheme *runtime.Scheme, wrap func(http.RoundTripper) http.RoundTripper) (client.Client, *rest.Config, error) {
	c := rest.CopyConfig(cfg)
	c.WrapTransport = wrap
	cl, err := client.New(c, client.Options{Scheme: scheme})
	return cl, c, err
}
