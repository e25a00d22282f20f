// Package proto_test checks, without protoc, that gen/ is what proto/
// generates: the .proto files are compiled in Go (protocompile) and their
// descriptors compared with the ones the generated packages embed. That
// catches every change of meaning (messages, fields, services, options)
// made without regenerating; a comment-only change is caught by
// `make verify-proto`, which runs protoc.
package proto_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// Every generated package, so that its descriptors are registered.
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/content/v1"
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
)

func TestGeneratedCodeMatchesTheProtos(t *testing.T) {
	var sources []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".proto") {
			sources = append(sources, filepath.ToSlash(path))
		}
		return err
	})
	if err != nil || len(sources) == 0 {
		t.Fatalf("no .proto files found: %v", err)
	}
	compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"."}})}
	files, err := compiler.Compile(context.Background(), sources...)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f.Path(), func(t *testing.T) {
			registered, err := protoregistry.GlobalFiles.FindFileByPath(f.Path())
			if err != nil {
				t.Fatalf("%s has no generated code imported here: run 'make generate-proto', and import its package in this test", f.Path())
			}
			want, got := normalized(f), normalized(registered)
			if !proto.Equal(want, got) {
				t.Fatalf("gen/ is stale for %s: run 'make generate-proto' and commit\nfrom the .proto: %v\ngenerated:      %v", f.Path(), want, got)
			}
		})
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(fd.Path(), "switchboard/") && !slices.Contains(sources, fd.Path()) {
			t.Errorf("generated code for %s has no .proto any more: run 'make generate-proto'", fd.Path())
		}
		return true
	})
}

// normalized drops what differs between compilers but not in meaning:
// comments and source positions, and json_name, which protoc fills in.
func normalized(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorProto {
	p := protodesc.ToFileDescriptorProto(fd)
	p.SourceCodeInfo = nil
	for _, m := range p.GetMessageType() {
		clearJSONNames(m)
	}
	return p
}

func clearJSONNames(m *descriptorpb.DescriptorProto) {
	for _, f := range m.GetField() {
		f.JsonName = nil
	}
	for _, n := range m.GetNestedType() {
		clearJSONNames(n)
	}
}
