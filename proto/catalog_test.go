package proto_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

// The catalog says which service serves which gRPC API (the operator opens
// port grpc for exactly those); the generated code says which exist. Every
// API of proto/ is served by one service, and each one a row names exists.
func TestCatalogNamesEveryGRPCService(t *testing.T) {
	servedBy := map[string]string{}
	for _, s := range catalog.All() {
		for _, name := range s.GRPC {
			if other, ok := servedBy[name]; ok {
				t.Errorf("%s is served by both %s and %s", name, other, s.Name)
			}
			servedBy[name] = s.Name
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				t.Errorf("%s serves %s, which proto/ does not define: %v", s.Name, name, err)
				continue
			}
			if _, ok := d.(protoreflect.ServiceDescriptor); !ok {
				t.Errorf("%s serves %s, which is not a service", s.Name, name)
			}
			if want := "switchboard." + s.Name + "."; !strings.HasPrefix(name, want) {
				t.Errorf("%s serves %s, outside its own package %s*", s.Name, name, want)
			}
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(fd.Path(), "switchboard/") {
			return true
		}
		for i := range fd.Services().Len() {
			name := string(fd.Services().Get(i).FullName())
			if _, ok := servedBy[name]; !ok {
				t.Errorf("%s (%s) is served by no catalog service: add it to the row's GRPC", name, fd.Path())
			}
		}
		return true
	})
}
