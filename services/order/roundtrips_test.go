package order_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/order"
	"github.com/switchboard-dev/switchboard/services/payment"
	"github.com/switchboard-dev/switchboard/services/product"
)

// maxRoundTripsPerOrder bounds the messages order, product and payment
// send the broker for one confirmed one-item order (KeyValue reads and
// writes, event publishes: each one request and its answer), counted by
// the broker. docs/benchmarks.md has the count before and after the saga
// became a state machine.
const maxRoundTripsPerOrder = 16

// The round trips to the broker of one order, counted by the embedded
// server as the messages the services sent it.
func TestBrokerRoundTripsPerOrder(t *testing.T) {
	broker := kittest.StartNATS(t, "")
	env := broker.Env()
	prod := kittest.Serve(t, product.Definition, env)
	pay := kittest.Serve(t, payment.Definition, env)
	env[catalog.EnvGRPC("product")], env[catalog.EnvGRPC("payment")] = prod.GRPCAddr, pay.GRPCAddr
	svc := kittest.Serve(t, order.Definition, env)
	ada := kittest.Token(t, "ada")
	place := func(key string) {
		req := order.PlaceRequest{Items: []events.Item{{ProductID: "notebook", Quantity: 1}}, PaymentMethod: "card", ShippingAddress: "1 Main St"}
		if status, _, raw := call(t, "POST", svc.URL+"/orders", ada, req, kit.HeaderIdempotencyKey, key); status != http.StatusCreated {
			t.Fatalf("order %s: %d %s", key, status, raw)
		}
	}
	place("warm-up") // connections, caches and consumers settle
	const orders = 20
	in := func() int64 {
		v, err := broker.Server.Varz(nil)
		if err != nil {
			t.Fatal(err)
		}
		return v.InMsgs
	}
	before := in()
	for i := range orders {
		place(fmt.Sprint("k", i))
	}
	perOrder := float64(in()-before) / orders
	t.Logf("%.1f messages to the broker per order", perOrder)
	if perOrder > maxRoundTripsPerOrder {
		t.Fatalf("%.1f round trips to the broker per order, more than %d", perOrder, maxRoundTripsPerOrder)
	}
}
