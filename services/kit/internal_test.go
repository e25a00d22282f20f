package kit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchboard-dev/switchboard/services/kit"
)

func TestInternalOnly(t *testing.T) {
	h := kit.InternalOnly(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"a service's call", http.Header{}, http.StatusNoContent},
		{"a user's token", http.Header{"Authorization": {"Bearer x"}}, http.StatusForbidden},
		{"any Authorization scheme", http.Header{"Authorization": {"Basic dTpw"}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/payments/pay_1/refund", nil)
			r.Header = tt.header
			w := httptest.NewRecorder()
			h(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
		})
	}
}
