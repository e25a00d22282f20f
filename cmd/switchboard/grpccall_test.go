package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// payments answers GetStatus for order o1 only.
type payments struct {
	paymentv1.UnimplementedPaymentsServer
}

func (payments) GetStatus(_ context.Context, req *paymentv1.GetStatusRequest) (*paymentv1.GetStatusResponse, error) {
	if req.GetOrderId() != "o1" {
		return nil, kit.StatusError(codes.NotFound, "payment_not_found", "orderId", "no payment for order %q", req.GetOrderId())
	}
	return &paymentv1.GetStatusResponse{Status: paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED}, nil
}

// servePayments runs payment's gRPC server on loopback; Charge and GetStatus
// admit order only, as the catalog says.
func servePayments(t *testing.T, p *kittest.PKI) string {
	t.Helper()
	policy := kit.GRPCPolicy{
		paymentv1.Payments_Charge_FullMethodName:    {"order"},
		paymentv1.Payments_GetStatus_FullMethodName: {"order"},
		paymentv1.Payments_Refund_FullMethodName:    {"order"},
		paymentv1.Payments_Void_FullMethodName:      {"order"},
	}
	srv, err := kit.NewGRPCServer(p.Identity(t, "payment"), kit.NewMetrics("payment"), policy, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	paymentv1.RegisterPaymentsServer(srv, payments{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestGRPCCall(t *testing.T) {
	p := kittest.NewPKI(t)
	addr := servePayments(t, p)
	dirs := map[string]string{}
	for _, svc := range []string{"order", "notification"} {
		dirs[svc] = filepath.Join(t.TempDir(), svc)
		p.WriteIdentityDir(t, dirs[svc], svc)
	}
	tests := []struct {
		name    string
		caller  string
		args    []string
		want    string // in the printed line
		wantErr string // "" for success
	}{
		{"notification may not charge", "notification", []string{"--method", "Charge"},
			"as notification -> PermissionDenied: service notification may not call /switchboard.payment.v1.Payments/Charge", "answered PermissionDenied"},
		{"order reaches GetStatus's handler", "order", []string{"--method", "GetStatus", "--request", `{"orderId":"o2"}`},
			"as order -> NotFound: no payment for order \"o2\"", "answered NotFound"},
		{"order reads a payment", "order", []string{"--method", "GetStatus", "--request", `{"orderId":"o1"}`},
			`"status":"PAYMENT_STATUS_COMPLETED"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(kit.EnvTLSDir, dirs[tt.caller])
			var out bytes.Buffer
			args := append([]string{"grpc-call", "--service", "payment", "--target", addr}, tt.args...)
			err := run(context.Background(), args, &out, io.Discard)
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output %q, want it to contain %q", out.String(), tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestGRPCCallRefusesBeforeDialling(t *testing.T) {
	t.Setenv(kit.EnvTLSDir, "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no method", []string{"--service", "payment"}, "needs --service and --method"},
		{"a service without gRPC", []string{"--service", "notification", "--method", "Charge"}, "notification serves no gRPC API"},
		{"an unknown method", []string{"--service", "payment", "--method", "Steal"}, `payment has no method "Steal" (it has [Charge GetStatus Refund Void])`},
		{"a malformed request", []string{"--service", "payment", "--method", "Charge", "--request", `{"nope":1}`}, "--request"},
		{"no identity", []string{"--service", "payment", "--method", "Charge"}, "TLS_DIR is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"grpc-call"}, tt.args...), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
