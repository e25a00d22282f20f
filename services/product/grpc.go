package product

import (
	"context"

	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"
)

// stockServer is the internal gRPC API over Catalog: it translates
// messages, and the Catalog's *kit.Errors become statuses with their
// reason (kit.ToStatus, in the server's interceptor).
type stockServer struct {
	productv1.UnimplementedStockServer
	cat *Catalog
}

func (s stockServer) Reserve(ctx context.Context, req *productv1.ReserveRequest) (*productv1.ReserveResponse, error) {
	r, created, err := s.cat.Reserve(ctx, req.GetProductId(), req.GetOrderId(), req.GetQuantity())
	if err != nil {
		return nil, err
	}
	return &productv1.ReserveResponse{Reservation: reservationProto(r), Replayed: !created}, nil
}

func (s stockServer) Commit(ctx context.Context, req *productv1.CommitRequest) (*productv1.CommitResponse, error) {
	r, err := s.cat.Commit(ctx, req.GetProductId(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &productv1.CommitResponse{Reservation: reservationProto(r)}, nil
}

func (s stockServer) Release(ctx context.Context, req *productv1.ReleaseRequest) (*productv1.ReleaseResponse, error) {
	r, err := s.cat.Release(ctx, req.GetProductId(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &productv1.ReleaseResponse{Reservation: reservationProto(r)}, nil
}

func (s stockServer) Restock(ctx context.Context, req *productv1.RestockRequest) (*productv1.RestockResponse, error) {
	_, replayed, err := s.cat.Restock(ctx, req.GetProductId(), req.GetOrderId(), req.GetQuantity())
	if err != nil {
		return nil, err
	}
	l, err := s.cat.Level(ctx, req.GetProductId())
	if err != nil {
		return nil, err
	}
	return &productv1.RestockResponse{Stock: levelProto(l), Replayed: replayed}, nil
}

func (s stockServer) GetStock(ctx context.Context, req *productv1.GetStockRequest) (*productv1.GetStockResponse, error) {
	l, err := s.cat.Level(ctx, req.GetProductId())
	if err != nil {
		return nil, err
	}
	return &productv1.GetStockResponse{Stock: levelProto(l)}, nil
}

func reservationProto(r Reservation) *productv1.Reservation {
	return &productv1.Reservation{ProductId: r.ProductID, OrderId: r.OrderID, Quantity: r.Quantity, UnitPrice: r.Price,
		State: reservationStates[r.State]}
}

// reservationStates: a restocked sale was committed; the proto's states
// are the reservation's, and Restock's answer says what came back.
var reservationStates = map[string]productv1.ReservationState{
	Reserved:  productv1.ReservationState_RESERVATION_STATE_RESERVED,
	Committed: productv1.ReservationState_RESERVATION_STATE_COMMITTED,
	Restocked: productv1.ReservationState_RESERVATION_STATE_COMMITTED,
	Released:  productv1.ReservationState_RESERVATION_STATE_RELEASED,
}

func levelProto(l StockLevel) *productv1.StockLevel {
	return &productv1.StockLevel{ProductId: l.ProductID, Available: l.Available, Reserved: l.Reserved, Sold: l.Sold, Restocked: l.Restocked}
}
