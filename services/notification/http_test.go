package notification_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/events"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
	"github.com/switchboard-dev/switchboard/services/notification"
)

func get(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := kittest.GatewayHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// Whose notifications come back is the token's business alone.
func TestCustomersSeeTheirOwnNotificationsOnly(t *testing.T) {
	b := kittest.StartNATS(t, "")
	svc := kittest.Serve(t, notification.Definition, b.Env())
	orders := b.Bus(t, "order")
	for _, o := range []events.OrderOutcome{{ID: "o1", UserID: "ada", Total: 100}, {ID: "o2", UserID: "bob", Total: 200}} {
		if err := orders.Publish(context.Background(), kit.EventID(catalog.OrderConfirmed, o.ID), "orders/"+o.ID, events.OrderConfirmed{OrderOutcome: o}); err != nil {
			t.Fatal(err)
		}
	}
	ada, bob := kittest.Token(t, "ada"), kittest.Token(t, "bob")
	mine := func(token string) []notification.Notification {
		t.Helper()
		status, raw := get(t, svc.URL+"/notifications", token)
		var list struct{ Items []notification.Notification }
		if status != http.StatusOK || json.Unmarshal(raw, &list) != nil {
			t.Fatalf("GET /notifications: %d %s", status, raw)
		}
		return list.Items
	}
	kittest.Eventually(t, 10*time.Second, "both notifications", func() bool { return len(mine(ada)) == 1 && len(mine(bob)) == 1 })
	if n := mine(ada)[0]; n.UserID != "ada" || n.Event != catalog.OrderConfirmed {
		t.Fatalf("Ada sees %+v", n)
	}

	refusals := []struct {
		name, query, token string
		status             int
		code, field        string
	}{
		{"another user named", "?userId=bob", ada, http.StatusBadRequest, kit.CodeInvalid, "userId"},
		{"oneself named", "?userId=ada", ada, http.StatusBadRequest, kit.CodeInvalid, "userId"},
		{"no token", "", "", http.StatusUnauthorized, kit.CodeUnauthenticated, ""},
		{"no token but a userId", "?userId=ada", "", http.StatusUnauthorized, kit.CodeUnauthenticated, ""},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, raw := get(t, svc.URL+"/notifications"+tt.query, tt.token)
			var e kit.ErrorBody
			_ = json.Unmarshal(raw, &e)
			if status != tt.status || e.Error.Code != tt.code || e.Error.Field != tt.field {
				t.Fatalf("%d %s, want %d %s naming %q", status, raw, tt.status, tt.code, tt.field)
			}
		})
	}
	if got := mine(kittest.Token(t, "carol")); len(got) != 0 {
		t.Fatalf("a user with none sees %+v", got)
	}
}
