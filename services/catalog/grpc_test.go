package catalog_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Who may call a method is a subset of who calls its service, and every
// service-to-service upstream is used by some method: the table and the
// Upstreams (which the NetworkPolicies and the operator's env wiring
// follow) say the same thing.
func TestInternalMethodsFollowTheUpstreams(t *testing.T) {
	used := map[[2]string]bool{} // caller, service
	seen := map[string]bool{}
	for _, m := range catalog.InternalMethods() {
		t.Run(m.Method, func(t *testing.T) {
			if seen[m.Method] {
				t.Error("declared twice")
			}
			seen[m.Method] = true
			svc, ok := catalog.Lookup(m.Service)
			if !ok {
				t.Fatalf("unknown service %q", m.Service)
			}
			if !slices.Contains(svc.GRPC, m.GRPCService()) {
				t.Errorf("%s's row does not name %s among its gRPC services %v", m.Service, m.GRPCService(), svc.GRPC)
			}
			if m.Name() == "" || !strings.HasPrefix(m.Method, "/switchboard."+m.Service+".") {
				t.Errorf("method %q is not /switchboard.%s.<version>.<Service>/<Method>", m.Method, m.Service)
			}
			if len(m.Callers) == 0 {
				t.Error("no caller: nobody may call it")
			}
			for _, c := range m.Callers {
				if c == catalog.Gateway {
					t.Error("the gateway forwards the public REST API only; it never calls gRPC")
				}
				if !slices.Contains(catalog.Callers(m.Service), c) {
					t.Errorf("caller %s does not list %s among its upstreams", c, m.Service)
				}
				used[[2]string{c, m.Service}] = true
			}
		})
	}
	for _, s := range catalog.All() {
		if s.Name == catalog.Gateway {
			continue
		}
		for _, up := range s.Upstreams {
			if !used[[2]string{s.Name, up}] {
				t.Errorf("%s lists %s as an upstream but may call none of its methods", s.Name, up)
			}
		}
		if s.ServesGRPC() && len(catalog.MethodsOf(s.Name)) == 0 {
			t.Errorf("%s serves gRPC but the table has no method of it", s.Name)
		}
	}
}

func TestInternalMethodHelpers(t *testing.T) {
	m := catalog.MethodsOf("payment")
	if len(m) == 0 || m[0].Method != "/switchboard.payment.v1.Payments/Charge" ||
		m[0].GRPCService() != "switchboard.payment.v1.Payments" || m[0].Name() != "Charge" {
		t.Fatalf("MethodsOf(payment)[0] = %+v", m)
	}
	m[0].Callers[0] = "notification"
	if catalog.MethodsOf("payment")[0].Callers[0] != "order" {
		t.Error("changing a returned method changed the table")
	}
	if got := catalog.EnvGRPC("product"); got != "PRODUCT_GRPC" {
		t.Errorf("EnvGRPC(product) = %q", got)
	}
	if n := len(catalog.MethodsOf(catalog.Gateway)); n != 0 {
		t.Errorf("the gateway serves %d gRPC methods", n)
	}
}
