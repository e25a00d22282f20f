package catalog

import (
	"slices"
	"strings"
)

// InternalMethod is one method of a service's internal gRPC API (proto/)
// and the services allowed to call it. The gRPC server of Service refuses
// every other caller with PERMISSION_DENIED (kit.GRPCPolicyFor builds its
// policy from this table), so a method missing here is refused to everyone
// and its server does not start.
//
// The grain is the method, not the service: today every method of a
// service admits the same callers (the service's Callers but the gateway),
// and the table says so line by line, so that a method added for one
// caller, such as a future admin-only operation, admits that caller alone.
type InternalMethod struct {
	// Service serves the method on GRPCPort.
	Service string
	// Method is the full gRPC method name,
	// "/switchboard.payment.v1.Payments/Charge".
	Method string
	// Callers are the services that may call it; each lists Service among
	// its Upstreams.
	Callers []string
}

// GRPCService is the protobuf service of the method,
// "switchboard.payment.v1.Payments".
func (m InternalMethod) GRPCService() string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(m.Method, "/"), "/")
	return svc
}

// Name is the method's short name, "Charge".
func (m InternalMethod) Name() string {
	_, name, _ := strings.Cut(strings.TrimPrefix(m.Method, "/"), "/")
	return name
}

// internalMethods: what order's saga needs of product and payment, and the
// reads of playback and content. proto/catalog_test.go checks it against
// the generated descriptors, both ways.
var internalMethods = []InternalMethod{
	{Service: "product", Method: "/switchboard.product.v1.Stock/Reserve", Callers: []string{"order"}},
	{Service: "product", Method: "/switchboard.product.v1.Stock/Commit", Callers: []string{"order"}},
	{Service: "product", Method: "/switchboard.product.v1.Stock/Release", Callers: []string{"order"}},
	{Service: "product", Method: "/switchboard.product.v1.Stock/Restock", Callers: []string{"order"}},
	{Service: "product", Method: "/switchboard.product.v1.Stock/GetStock", Callers: []string{"order"}},

	{Service: "payment", Method: "/switchboard.payment.v1.Payments/Charge", Callers: []string{"order"}},
	{Service: "payment", Method: "/switchboard.payment.v1.Payments/GetStatus", Callers: []string{"order"}},
	{Service: "payment", Method: "/switchboard.payment.v1.Payments/Refund", Callers: []string{"order"}},
	{Service: "payment", Method: "/switchboard.payment.v1.Payments/Void", Callers: []string{"order"}},

	// The viewer's plan and profiles: playback starting a session, content
	// deciding access. Both authenticated the viewer themselves.
	{Service: "account", Method: "/switchboard.account.v1.Accounts/GetAccount", Callers: []string{"content", "playback"}},

	{Service: "content", Method: "/switchboard.content.v1.Library/GetVideo", Callers: []string{"playback"}},
	{Service: "content", Method: "/switchboard.content.v1.Library/CheckAccess", Callers: []string{"playback"}},
}

// InternalMethods returns every internal gRPC method, by serving service
// in table order. The slice and its Callers are copies.
func InternalMethods() []InternalMethod {
	out := make([]InternalMethod, len(internalMethods))
	for i, m := range internalMethods {
		m.Callers = slices.Clone(m.Callers)
		out[i] = m
	}
	return out
}

// MethodsOf returns the internal gRPC methods service serves.
func MethodsOf(service string) []InternalMethod {
	var out []InternalMethod
	for _, m := range InternalMethods() {
		if m.Service == service {
			out = append(out, m)
		}
	}
	return out
}

// EnvGRPC is the env var that carries the gRPC target of an internal
// upstream: "product" → "PRODUCT_GRPC". Its value is any gRPC target, such
// as dns:///shop-product.demo.svc.cluster.local:9090; the client proves
// the server's identity (the upstream's SPIFFE ID), not its address.
func EnvGRPC(upstream string) string {
	return strings.TrimSuffix(EnvURL(upstream), "_URL") + "_GRPC"
}
