package payment

import (
	"context"
	"net/http"

	paymentv1 "github.com/switchboard-dev/switchboard/gen/switchboard/payment/v1"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// paymentsServer is the internal gRPC API over Ledger: it translates
// messages, and the Ledger's *kit.Errors become statuses with their reason
// (kit.ToStatus, in the server's interceptor).
type paymentsServer struct {
	paymentv1.UnimplementedPaymentsServer
	ledger *Ledger
}

func (s paymentsServer) Charge(ctx context.Context, req *paymentv1.ChargeRequest) (*paymentv1.ChargeResponse, error) {
	p, created, err := s.ledger.Charge(ctx, ChargeRequest{OrderID: req.GetOrderId(), UserID: req.GetUserId(), Amount: req.GetAmount(), Method: req.GetMethod()})
	if err != nil {
		return nil, err
	}
	if p.Status == Declined {
		// Recorded, so GetStatus reads DECLINED and a repeat answers the same.
		return nil, kit.Errorf(http.StatusPaymentRequired, CodeDeclined, "payment declined: %s", p.Reason)
	}
	return &paymentv1.ChargeResponse{Payment: paymentProto(p), Replayed: !created}, nil
}

func (s paymentsServer) GetStatus(ctx context.Context, req *paymentv1.GetStatusRequest) (*paymentv1.GetStatusResponse, error) {
	p, found, err := s.ledger.Status(ctx, req.GetOrderId())
	if err != nil {
		return nil, err
	}
	if !found {
		return &paymentv1.GetStatusResponse{Status: paymentv1.PaymentStatus_PAYMENT_STATUS_NONE}, nil
	}
	resp := &paymentv1.GetStatusResponse{Status: statusProto(p.Status)}
	if p.Status != Voided {
		resp.PaymentId, resp.Payment = p.ID, paymentProto(p)
	}
	return resp, nil
}

func (s paymentsServer) Refund(ctx context.Context, req *paymentv1.RefundRequest) (*paymentv1.RefundResponse, error) {
	p, err := s.ledger.Refund(ctx, req.GetOrderId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &paymentv1.RefundResponse{Payment: paymentProto(p)}, nil
}

func (s paymentsServer) Void(ctx context.Context, req *paymentv1.VoidRequest) (*paymentv1.VoidResponse, error) {
	p, taken, err := s.ledger.Void(ctx, req.GetOrderId(), req.GetReason())
	if err != nil {
		return nil, err
	}
	resp := &paymentv1.VoidResponse{Status: statusProto(p.Status), MoneyTaken: taken}
	if p.Status != Voided {
		resp.Payment = paymentProto(p)
	}
	return resp, nil
}

var statuses = map[string]paymentv1.PaymentStatus{
	Completed: paymentv1.PaymentStatus_PAYMENT_STATUS_COMPLETED,
	Declined:  paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED,
	Refunded:  paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED,
	Voided:    paymentv1.PaymentStatus_PAYMENT_STATUS_VOIDED,
}

// statusProto maps a stored status; one it does not know stays
// UNSPECIFIED, which a client must not read as "no charge".
func statusProto(s string) paymentv1.PaymentStatus { return statuses[s] }

func paymentProto(p events.Payment) *paymentv1.Payment {
	return &paymentv1.Payment{Id: p.ID, OrderId: p.OrderID, UserId: p.UserID, Amount: p.Amount, Method: p.Method,
		Status: statusProto(p.Status), DeclineReason: p.Reason, RefundReason: p.RefundReason}
}
