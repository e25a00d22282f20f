package events

import (
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
)

// Item is one line of an order; Price is filled from the reservation.
type Item struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
	Price     int64  `json:"price,omitempty"`
}

// Change is one entry of an order's status history.
type Change struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// Order is an order as the order service answers it and order.created
// carries it.
type Order struct {
	ID              string     `json:"id"`
	UserID          string     `json:"userId"`
	Status          string     `json:"status"`
	Items           []Item     `json:"items"`
	Total           int64      `json:"total"`
	PaymentMethod   string     `json:"paymentMethod"`
	ShippingAddress string     `json:"shippingAddress"`
	PaymentID       string     `json:"paymentId,omitempty"`
	Error           *kit.Error `json:"error,omitempty"`
	Refund          *Refund    `json:"refund,omitempty"`
	History         []Change   `json:"history"`
	CreatedAt       time.Time  `json:"createdAt"`
	UpdatedAt       time.Time  `json:"updatedAt"`
}

// Refund is what staff decided when they refunded a confirmed order.
type Refund struct {
	// Restock says whether the goods went back into stock.
	Restock bool   `json:"restock"`
	Reason  string `json:"reason"`
}

// OrderCreated is the data of order.created: the order as placed, pending.
type OrderCreated struct{ Order }

// OrderOutcome is how an order ended, with the customer's email for
// notifications: the data of order.confirmed and order.cancelled. The fields
// stand in alphabetical order, the order of the map this struct replaced, so
// the bytes on the wire stayed the same.
type OrderOutcome struct {
	Email string     `json:"email"`
	Error *kit.Error `json:"error"`
	ID    string     `json:"id"`
	Items []Item     `json:"items"`
	// Money says, on order.cancelled, whether the customer's money was
	// taken and given back ("returned") or never taken ("none").
	Money     string `json:"money,omitempty"`
	PaymentID string `json:"paymentId"`
	Status    string `json:"status"`
	Total     int64  `json:"total"`
	UserID    string `json:"userId"`
}

// OrderConfirmed is the data of order.confirmed.
type OrderConfirmed struct{ OrderOutcome }

// OrderCancelled is the data of order.cancelled.
type OrderCancelled struct{ OrderOutcome }

// OrderRefunded is the data of order.refunded: a confirmed order staff
// refunded, published once the money is returned and the stock restocked
// as Refund says.
type OrderRefunded struct {
	OrderOutcome
	Refund Refund `json:"refund"`
}

func (OrderCreated) EventType() string   { return catalog.OrderCreated }
func (OrderConfirmed) EventType() string { return catalog.OrderConfirmed }
func (OrderCancelled) EventType() string { return catalog.OrderCancelled }
func (OrderRefunded) EventType() string  { return catalog.OrderRefunded }
