package proto_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// Every method of every gRPC service a catalog row serves has a line in
// the catalog's internal-method table, and every line names a method that
// exists: a method added to a .proto without saying who may call it fails
// here (and its server refuses to start: kit.GRPCServer.CheckPolicy).
func TestCatalogSaysWhoMayCallEveryMethod(t *testing.T) {
	declared := map[string]catalog.InternalMethod{}
	for _, m := range catalog.InternalMethods() {
		declared[m.Method] = m
	}
	defined := map[string]bool{}
	for _, s := range catalog.All() {
		for _, name := range s.GRPC {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			sd, ok := d.(protoreflect.ServiceDescriptor)
			if !ok {
				continue // reported by TestCatalogNamesEveryGRPCService
			}
			for i := range sd.Methods().Len() {
				full := "/" + name + "/" + string(sd.Methods().Get(i).Name())
				defined[full] = true
				m, ok := declared[full]
				switch {
				case !ok:
					t.Errorf("%s has no line in catalog.InternalMethods: say who may call it", full)
				case m.Service != s.Name:
					t.Errorf("%s is served by %s, but its line names %s", full, s.Name, m.Service)
				}
			}
		}
	}
	for full := range declared {
		if !defined[full] {
			t.Errorf("catalog.InternalMethods names %s, which no served .proto service defines", full)
		}
	}
}
