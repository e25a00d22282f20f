package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	// The internal APIs' descriptors, registered for lookup by name.
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/content/v1"
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	_ "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
	"github.com/switchboard-dev/switchboard/internal/render"
	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// grpcCall calls one internal gRPC method of a service of the pod's own
// Platform, as the pod's own service: the identity at TLS_DIR, which the
// server authorizes against its callers. It prints the status the server
// answered and fails unless it is OK. The services' image has no shell, so
// this is how one proves, inside a real pod, who may call what
// (kubectl exec <pod> -- /switchboard grpc-call --service payment --method Charge).
func grpcCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("grpc-call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard grpc-call --service payment --method GetStatus [--request '{\"orderId\":\"o1\"}'] [--target host:port] [--timeout 5s]")
		fmt.Fprintln(stderr, "\nCalls one internal gRPC method with the identity at TLS_DIR and prints the answer's status.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	service := fs.String("service", "", "the service to call (a catalog row that serves gRPC)")
	method := fs.String("method", "", "the method's name, e.g. Charge")
	request := fs.String("request", "{}", "the request message, in protobuf JSON")
	target := fs.String("target", "", "gRPC target; default the service's Service in the caller's own Platform: <platform>-<service>.<namespace>.svc.cluster.local:9090")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of the call")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 || *service == "" || *method == "" {
		return fmt.Errorf("%w: grpc-call needs --service and --method, and takes no arguments", errUsage)
	}
	md, err := internalMethod(*service, *method)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(*request), req); err != nil {
		return fmt.Errorf("%w: --request: %v", errUsage, err)
	}
	ident, err := kit.IdentityFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	self := ident.ID()
	if *target == "" {
		*target = fmt.Sprintf("%s-%s.%s.svc.%s:%d", self.Platform, *service, self.Namespace, render.ClusterDomain, catalog.GRPCPort)
	}
	// The server must prove it is the service asked for, of our Platform.
	creds := credentials.NewTLS(kit.ClientTLSConfig(ident, kit.AuthorizeID(self.Sibling(*service))))
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	full := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	resp := dynamicpb.NewMessage(md.Output())
	err = conn.Invoke(ctx, full, req, resp)
	st := status.Convert(err)
	fmt.Fprintf(stdout, "%s %s as %s -> %s: %s\n", *target, full, self.Service, st.Code(), st.Message())
	if st.Code() != codes.OK {
		return fmt.Errorf("%s answered %s", full, st.Code())
	}
	b, _ := protojson.Marshal(resp)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// internalMethod finds method among the gRPC services service's catalog
// row serves.
func internalMethod(service, method string) (protoreflect.MethodDescriptor, error) {
	row, ok := catalog.Lookup(service)
	if !ok {
		return nil, fmt.Errorf("unknown service %q", service)
	}
	if !row.ServesGRPC() {
		return nil, fmt.Errorf("%s serves no gRPC API", service)
	}
	var names []string
	for _, name := range row.GRPC {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s is not a gRPC service", name)
		}
		if m := sd.Methods().ByName(protoreflect.Name(method)); m != nil {
			return m, nil
		}
		for i := range sd.Methods().Len() {
			names = append(names, string(sd.Methods().Get(i).Name()))
		}
	}
	slices.Sort(names)
	return nil, fmt.Errorf("%s has no method %q (it has %v)", service, method, names)
}
