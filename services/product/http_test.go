package product_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

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
	resp, err := http.DefaultClient.Do(req)
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

// The saga's routes take no user: a request carrying a customer's token
// (as one the gateway forwards would) is refused and moves no stock.
func TestInternalRoutesRefuseUsers(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	env["SEED_DEMO"] = "false"
	svc := kittest.Serve(t, product.Definition, env)
	admin := kittest.StaffToken(t, "staff1")
	customer := kittest.Token(t, "u1")
	var p product.Product
	_, _, raw := call(t, "POST", svc.URL+"/products", admin, product.NewProduct{Name: "Lamp", Category: "home", Price: 1000, Stock: 5})
	_ = json.Unmarshal(raw, &p)

	reserve := map[string]any{"orderId": "o1", "quantity": 2}
	for _, token := range []string{customer, admin} {
		if status, e, _ := call(t, "POST", svc.URL+"/stock/"+p.ID+"/reservations", token, reserve); status != http.StatusForbidden || e.Code != kit.CodeForbidden {
			t.Fatalf("a reservation with a user's token: %d %+v", status, e)
		}
	}
	if status, _, raw := call(t, "POST", svc.URL+"/stock/"+p.ID+"/reservations", "", reserve); status != http.StatusCreated {
		t.Fatalf("order's reservation: %d %s", status, raw)
	}
	if status, _, raw := call(t, "POST", svc.URL+"/stock/"+p.ID+"/reservations/o1/commit", "", nil); status != http.StatusOK {
		t.Fatalf("order's commit: %d %s", status, raw)
	}
	restock := map[string]any{"orderId": "o1", "quantity": 2}
	if status, _, _ := call(t, "POST", svc.URL+"/stock/"+p.ID+"/restocks", customer, restock); status != http.StatusForbidden {
		t.Fatalf("a restock with a customer's token: %d", status)
	}
	var level product.StockLevel
	_, _, raw = call(t, "GET", svc.URL+"/stock/"+p.ID, admin, nil)
	_ = json.Unmarshal(raw, &level)
	if level != (product.StockLevel{ProductID: p.ID, Available: 3, Sold: 2}) {
		t.Fatalf("stock %+v", level)
	}
	if status, _, raw := call(t, "POST", svc.URL+"/stock/"+p.ID+"/restocks", "", restock); status != http.StatusOK {
		t.Fatalf("order's restock: %d %s", status, raw)
	}
	_, _, raw = call(t, "GET", svc.URL+"/stock/"+p.ID, admin, nil)
	_ = json.Unmarshal(raw, &level)
	if level != (product.StockLevel{ProductID: p.ID, Available: 5, Sold: 0}) {
		t.Fatalf("stock after the restock %+v", level)
	}
}
