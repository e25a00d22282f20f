package catalog_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
)

func TestRoutesAreWellFormed(t *testing.T) {
	gw, _ := catalog.Lookup(catalog.Gateway)
	ids := map[string]string{}
	for _, r := range catalog.Routes() {
		t.Run(r.Pattern(), func(t *testing.T) {
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, r.Method) {
				t.Errorf("method %q", r.Method)
			}
			if !slices.Contains(catalog.Audiences, r.Audience) {
				t.Errorf("audience %q", r.Audience)
			}
			if r.Summary == "" || r.Status < 200 || r.Status > 299 {
				t.Errorf("summary %q, status %d: both are needed", r.Summary, r.Status)
			}
			if r.Body && r.Method == http.MethodGet {
				t.Error("a GET with a body")
			}
			if !r.Own() {
				if !slices.Contains(gw.Upstreams, r.Service) {
					t.Errorf("service %q is not an upstream of the gateway", r.Service)
				}
				if !strings.HasPrefix(r.Path, "/api/"+r.Service+"/") {
					t.Errorf("path does not start with /api/%s/", r.Service)
				}
				if !strings.HasPrefix(r.ServicePath(), "/") || r.Prefix()+r.ServicePath() != r.Path {
					t.Errorf("service path %q, prefix %q", r.ServicePath(), r.Prefix())
				}
			} else if r.ServicePath() != r.Path {
				t.Errorf("the gateway's own route has service path %q", r.ServicePath())
			}
			if other, ok := ids[r.OperationID()]; ok {
				t.Errorf("operation id %s is also %s's", r.OperationID(), other)
			}
			ids[r.OperationID()] = r.Pattern()
			if got, ok := catalog.LookupRoute(r.Method, r.Path); !ok || got.Pattern() != r.Pattern() {
				t.Errorf("LookupRoute = %v, %v", got.Pattern(), ok)
			}
		})
	}
	// ServeMux panics on two patterns that match the same requests.
	mux := http.NewServeMux()
	for _, r := range catalog.Routes() {
		mux.HandleFunc(r.Pattern(), func(http.ResponseWriter, *http.Request) {})
	}
}

func TestRouteHelpers(t *testing.T) {
	r, ok := catalog.LookupRoute("GET", "/api/recommendation/related/{contentId}")
	if !ok {
		t.Fatal("no related route")
	}
	if r.ServicePath() != "/related/{contentId}" || !slices.Equal(r.PathParams(), []string{"contentId"}) ||
		r.OperationID() != "getRecommendationRelatedByContentId" || r.Pattern() != "GET /api/recommendation/related/{contentId}" {
		t.Errorf("%s: service path %q, params %v, id %q", r.Pattern(), r.ServicePath(), r.PathParams(), r.OperationID())
	}
	if _, ok := catalog.LookupRoute("POST", "/api/product/stock/{id}/reservations"); ok {
		t.Error("an internal operation is a route")
	}
	total := 0
	for _, a := range catalog.Audiences {
		for _, r := range catalog.RoutesFor(a) {
			if r.Audience != a {
				t.Errorf("RoutesFor(%s) has %s, of %s", a, r.Pattern(), r.Audience)
			}
			total++
		}
	}
	if total != len(catalog.Routes()) {
		t.Errorf("the audiences hold %d routes of %d", total, len(catalog.Routes()))
	}
	for _, r := range catalog.RoutesOf("payment") {
		if r.Service != "payment" {
			t.Errorf("RoutesOf(payment) has %s", r.Pattern())
		}
	}
	if n := len(catalog.RoutesOf(catalog.Gateway)); n != 8 {
		t.Errorf("the gateway has %d routes of its own, want /health, /api/openapi.json and the console's six", n)
	}
}
