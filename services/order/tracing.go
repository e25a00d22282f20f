package order

import (
	"context"

	"go.opentelemetry.io/otel/attribute"

	"github.com/switchboard-dev/switchboard/services/kit"
)

// The saga's steps are its calls through the Stock and Payments ports:
// TraceStock and TracePayments wrap each in a span of its own (saga.reserve,
// saga.charge, saga.commit…), so an order's trace reads as the saga ran,
// each step holding the gRPC call it made, retries included.

// TraceStock traces the saga's steps on s.
func TraceStock(s Stock) Stock { return tracedStock{s} }

// TracePayments traces the saga's steps on p.
func TracePayments(p Payments) Payments { return tracedPayments{p} }

type tracedStock struct{ Stock }

func step(ctx context.Context, name, orderID string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	return kit.Step(ctx, "saga."+name, append(attrs, attribute.String("order.id", orderID))...)
}

func (t tracedStock) Reserve(ctx context.Context, productID, orderID string, quantity int64) (Reservation, error) {
	ctx, done := step(ctx, "reserve", orderID, attribute.String("product.id", productID), attribute.Int64("quantity", quantity))
	r, err := t.Stock.Reserve(ctx, productID, orderID, quantity)
	done(err)
	return r, err
}

func (t tracedStock) Commit(ctx context.Context, productID, orderID string) error {
	ctx, done := step(ctx, "commit", orderID, attribute.String("product.id", productID))
	err := t.Stock.Commit(ctx, productID, orderID)
	done(err)
	return err
}

func (t tracedStock) Release(ctx context.Context, productID, orderID string) error {
	ctx, done := step(ctx, "release", orderID, attribute.String("product.id", productID))
	err := t.Stock.Release(ctx, productID, orderID)
	done(err)
	return err
}

func (t tracedStock) Restock(ctx context.Context, productID, orderID string, quantity int64) error {
	ctx, done := step(ctx, "restock", orderID, attribute.String("product.id", productID), attribute.Int64("quantity", quantity))
	err := t.Stock.Restock(ctx, productID, orderID, quantity)
	done(err)
	return err
}

type tracedPayments struct{ Payments }

func (t tracedPayments) Charge(ctx context.Context, c ChargeRequest) (Payment, error) {
	ctx, done := step(ctx, "charge", c.OrderID, attribute.Int64("amount", c.Amount))
	p, err := t.Payments.Charge(ctx, c)
	done(err)
	return p, err
}

func (t tracedPayments) Status(ctx context.Context, orderID string) (Payment, error) {
	ctx, done := step(ctx, "payment_status", orderID)
	p, err := t.Payments.Status(ctx, orderID)
	done(err)
	return p, err
}

func (t tracedPayments) Refund(ctx context.Context, orderID, reason string) (Payment, error) {
	ctx, done := step(ctx, "refund", orderID)
	p, err := t.Payments.Refund(ctx, orderID, reason)
	done(err)
	return p, err
}

func (t tracedPayments) Void(ctx context.Context, orderID, reason string) (VoidOutcome, error) {
	ctx, done := step(ctx, "void", orderID)
	v, err := t.Payments.Void(ctx, orderID, reason)
	done(err)
	return v, err
}
