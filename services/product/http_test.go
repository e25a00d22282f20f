package product_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	productv1 "github.com/switchboard-dev/switchboard/gen/switchboard/product/v1"

	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/product"
)

func call(t *testing.T, method, url, token string, body any) (int, kit.Error, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := kittest.GatewayHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e kit.ErrorBody
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error, raw
}

// Staff routes answer 401 without a token and 403 to a customer, checked by
// the service itself; public reads need no token.
func TestAudiences(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	env["SEED_DEMO"] = "false"
	svc := kittest.Serve(t, product.Definition, env)
	admin := kittest.StaffToken(t, "staff1")
	customer := kittest.Token(t, "u1")

	status, _, raw := call(t, "POST", svc.URL+"/products", admin, product.NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 5})
	if status != http.StatusCreated {
		t.Fatalf("an admin creating a product: %d %s", status, raw)
	}
	var p product.Product
	_ = json.Unmarshal(raw, &p)

	staff := []struct {
		method, path string
		body         any
		ok           int
	}{
		{"POST", "/products", product.NewProduct{Name: "Rug", Category: "home", Price: 5000, Stock: 1}, http.StatusCreated},
		{"PATCH", "/products/" + p.ID, map[string]any{"price": 1200}, http.StatusOK},
		{"GET", "/stock/" + p.ID, nil, http.StatusOK},
		{"PUT", "/stock/" + p.ID, map[string]any{"available": 7}, http.StatusOK},
	}
	for _, tt := range staff {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, c := range []struct {
				who, token string
				status     int
				code       string
			}{
				{"no token", "", http.StatusUnauthorized, kit.CodeUnauthenticated},
				{"a customer", customer, http.StatusForbidden, kit.CodeForbidden},
				{"an admin", admin, tt.ok, ""},
			} {
				status, e, raw := call(t, tt.method, svc.URL+tt.path, c.token, tt.body)
				if status != c.status || e.Code != c.code {
					t.Errorf("%s: %d %s, want %d %q", c.who, status, raw, c.status, c.code)
				}
			}
		})
	}

	var level product.StockLevel
	_, _, raw = call(t, "GET", svc.URL+"/stock/"+p.ID, admin, nil)
	if err := json.Unmarshal(raw, &level); err != nil || level != (product.StockLevel{ProductID: p.ID, Available: 7}) {
		t.Fatalf("stock after the customer's PUT was refused: %s", raw)
	}
	for _, path := range []string{"/products", "/products/" + p.ID} {
		if status, _, raw := call(t, "GET", svc.URL+path, "", nil); status != http.StatusOK {
			t.Errorf("public GET %s: %d %s", path, status, raw)
		}
	}

	fields := []struct {
		name  string
		body  any
		field string
	}{
		{"a negative price", map[string]any{"price": -1}, "price"},
		{"an empty name", map[string]any{"name": " "}, "name"},
		{"a category with a space", map[string]any{"category": "a b"}, "category"},
		{"stock is not patched", map[string]any{"stock": 3}, "stock"},
		{"a price that is no number", map[string]any{"price": "cheap"}, "price"},
	}
	for _, tt := range fields {
		t.Run("PATCH with "+tt.name, func(t *testing.T) {
			status, e, raw := call(t, "PATCH", svc.URL+"/products/"+p.ID, admin, tt.body)
			if status != http.StatusBadRequest || e.Field != tt.field {
				t.Fatalf("%d %s, want a 400 naming %s", status, raw, tt.field)
			}
		})
	}
	if status, e, _ := call(t, "PATCH", svc.URL+"/products/nope", admin, map[string]any{"price": 1}); status != http.StatusNotFound || e.Code != kit.CodeNotFound {
		t.Fatalf("patching an unknown product: %d %+v", status, e)
	}
}

// The saga's operations are gRPC methods for order alone: over REST they
// do not exist, whoever asks, and over gRPC the stock moves for order's
// identity only, with the domain codes of the stock API.
func TestStockOperationsAreOrdersOverGRPC(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	env["SEED_DEMO"] = "false"
	svc := kittest.Serve(t, product.Definition, env)
	admin := kittest.StaffToken(t, "staff1")
	var p product.Product
	_, _, raw := call(t, "POST", svc.URL+"/products", admin, product.NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 5})
	_ = json.Unmarshal(raw, &p)

	for _, path := range []string{"/stock/" + p.ID + "/reservations", "/stock/" + p.ID + "/reservations/o1/commit", "/stock/" + p.ID + "/restocks"} {
		for _, token := range []string{"", admin} {
			if status, _, _ := call(t, "POST", svc.URL+path, token, map[string]any{"orderId": "o1", "quantity": 2}); status != http.StatusNotFound {
				t.Errorf("POST %s over REST: %d, want 404", path, status)
			}
		}
	}

	ctx := context.Background()
	asOrder := productv1.NewStockClient(kittest.Platform(t).GRPCClient(t, "order", "product", svc.GRPCAddr))
	asPayment := productv1.NewStockClient(kittest.Platform(t).GRPCClient(t, "payment", "product", svc.GRPCAddr))
	if _, err := asPayment.Reserve(ctx, &productv1.ReserveRequest{ProductId: p.ID, OrderId: "o1", Quantity: 2}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("payment reserving: %v", err)
	}
	res, err := asOrder.Reserve(ctx, &productv1.ReserveRequest{ProductId: p.ID, OrderId: "o1", Quantity: 2})
	if err != nil || res.GetReplayed() || res.GetReservation().GetUnitPrice() != 1000 ||
		res.GetReservation().GetState() != productv1.ReservationState_RESERVATION_STATE_RESERVED {
		t.Fatalf("order's reserve: %v %v", res, err)
	}
	if res, err := asOrder.Reserve(ctx, &productv1.ReserveRequest{ProductId: p.ID, OrderId: "o1", Quantity: 2}); err != nil || !res.GetReplayed() {
		t.Fatalf("order's repeated reserve: %v %v", res, err)
	}
	if _, err := asOrder.Commit(ctx, &productv1.CommitRequest{ProductId: p.ID, OrderId: "o1"}); err != nil {
		t.Fatalf("order's commit: %v", err)
	}
	rs, err := asOrder.Restock(ctx, &productv1.RestockRequest{ProductId: p.ID, OrderId: "o1", Quantity: 2})
	want := &productv1.StockLevel{ProductId: p.ID, Available: 5, Sold: 2, Restocked: 2}
	if err != nil || !proto.Equal(rs.GetStock(), want) || rs.GetReplayed() {
		t.Fatalf("order's restock: %v %v", rs, err)
	}
	refusals := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
		field  string
	}{
		{"an unknown product", func() error {
			_, err := asOrder.Reserve(ctx, &productv1.ReserveRequest{ProductId: "nope", OrderId: "o2", Quantity: 1})
			return err
		}, codes.NotFound, product.CodeUnknownProduct, "product_id"},
		{"more than available", func() error {
			_, err := asOrder.Reserve(ctx, &productv1.ReserveRequest{ProductId: p.ID, OrderId: "o2", Quantity: 6})
			return err
		}, codes.FailedPrecondition, product.CodeOutOfStock, "quantity"},
		{"a commit of nothing", func() error {
			_, err := asOrder.Commit(ctx, &productv1.CommitRequest{ProductId: p.ID, OrderId: "o9"})
			return err
		}, codes.NotFound, product.CodeReservationNotFound, ""},
		{"a malformed order id", func() error {
			_, err := asOrder.Release(ctx, &productv1.ReleaseRequest{ProductId: p.ID, OrderId: "a b"})
			return err
		}, codes.InvalidArgument, kit.CodeInvalid, "order_id"},
		{"the stock of an unknown product", func() error {
			_, err := asOrder.GetStock(ctx, &productv1.GetStockRequest{ProductId: "nope"})
			return err
		}, codes.NotFound, product.CodeUnknownProduct, "product_id"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if e := kit.AsError(kit.FromStatus(err)); status.Code(err) != tt.code || e.Code != tt.reason || e.Field != tt.field {
				t.Fatalf("%v: code %s reason %q field %q, want %s %s %q", err, status.Code(err), e.Code, e.Field, tt.code, tt.reason, tt.field)
			}
		})
	}
	var level product.StockLevel
	_, _, raw = call(t, "GET", svc.URL+"/stock/"+p.ID, admin, nil)
	if err := json.Unmarshal(raw, &level); err != nil || level != (product.StockLevel{ProductID: p.ID, Available: 5, Sold: 2, Restocked: 2}) {
		t.Fatalf("stock %s", raw)
	}
}
