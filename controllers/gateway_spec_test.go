package controllers_test

import (
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchboard-dev/switchboard/internal/testgen"
)

// The API server takes network addresses in CIDR notation as trusted
// proxies, IPv4 or IPv6, and refuses anything else, a host address with a
// prefix length included: "10.1.2.3/8" is more likely a mistake than a
// network.
func TestTrustedProxyCIDRsAreNetworks(t *testing.T) {
	ns := newNamespace(t)
	for _, tt := range []struct {
		cidrs []string
		ok    bool
	}{
		{[]string{"10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "203.0.113.7/32"}, true},
		{[]string{"10.1.2.3/8"}, false},
		{[]string{"10.0.0.1"}, false},
		{[]string{"not-a-network"}, false},
		{[]string{"::ffff:10.0.0.0/104"}, false},
	} {
		p := testgen.Platform("proxies", testgen.WithNamespace(ns), testgen.WithTrustedProxies(tt.cidrs...))
		err := k8s.Create(testCtx, p, client.DryRunAll)
		if (err == nil) != tt.ok {
			t.Errorf("trustedProxyCIDRs %v: accepted=%v, want %v (%v)", tt.cidrs, err == nil, tt.ok, err)
		}
	}
}
