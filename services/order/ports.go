package order

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// Payments is what order asks of payment besides the charge: what became
// of an order's charge, and giving the money back. restPayments speaks
// payment's internal REST API today; moving to gRPC swaps the adapter, not
// the saga.
type Payments interface {
	// ChargeOf reports an order's charge; the zero Charge when there is none.
	ChargeOf(ctx context.Context, orderID string) (Charge, error)
	// Refund returns a completed charge's money; refunding twice is a no-op.
	Refund(ctx context.Context, orderID, paymentID string) error
}

// Charge is payment's record of an order's charge.
type Charge struct {
	ID     string `json:"id"`
	Status string `json:"status"` // completed, declined or refunded
}

// Stock is what order asks of product besides reservations: putting back
// what a refunded order bought. restStock speaks product's internal REST
// API today.
type Stock interface {
	// Restock returns quantity of productID, bought by orderID, to the
	// available stock, once per order however often it is asked.
	Restock(ctx context.Context, productID, orderID string, quantity int64) error
}

type restPayments struct{ c Caller }

func (p restPayments) ChargeOf(ctx context.Context, orderID string) (Charge, error) {
	resp, err := p.c.Do(ctx, kit.Request{Method: http.MethodGet, Path: "/orders/" + url.PathEscape(orderID) + "/payments"})
	if err != nil {
		return Charge{}, err
	}
	if resp.Status != http.StatusOK {
		return Charge{}, kit.UpstreamError(resp)
	}
	var list struct{ Items []Charge }
	if err := resp.JSON(&list); err != nil {
		return Charge{}, fmt.Errorf("payment answered %w", err)
	}
	if len(list.Items) == 0 {
		return Charge{}, nil
	}
	return list.Items[0], nil
}

func (p restPayments) Refund(ctx context.Context, orderID, paymentID string) error {
	resp, err := p.c.Do(ctx, kit.Request{Method: http.MethodPost, Path: "/payments/" + url.PathEscape(paymentID) + "/refund", IdempotencyKey: orderID})
	if err != nil {
		return err
	}
	if resp.Status != http.StatusOK {
		return kit.UpstreamError(resp)
	}
	return nil
}

type restStock struct{ c Caller }

func (s restStock) Restock(ctx context.Context, productID, orderID string, quantity int64) error {
	resp, err := s.c.Do(ctx, kit.Request{Method: http.MethodPost, Path: "/stock/" + url.PathEscape(productID) + "/restocks",
		Body: map[string]any{"orderId": orderID, "quantity": quantity}, IdempotencyKey: orderID})
	if err != nil {
		return err
	}
	if resp.Status != http.StatusOK {
		return kit.UpstreamError(resp)
	}
	return nil
}
