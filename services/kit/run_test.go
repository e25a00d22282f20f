package kit_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/kit"
	"github.com/switchboard-dev/switchboard/services/kit/kittest"
)

// opsService has one API route and one ops route.
type opsService struct{}

func (opsService) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		kit.WriteJSON(w, http.StatusOK, map[string]string{"hello": "api"})
	})
}

func (opsService) OpsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /detail", func(w http.ResponseWriter, r *http.Request) {
		kit.WriteJSON(w, http.StatusOK, map[string]string{"hello": "ops"})
	})
}

func (opsService) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// The API port serves the API only; probes, metrics and the service's ops
// routes live on the ops port, and neither port serves the other's routes.
func TestRunSplitsTheAPIAndTheOpsPort(t *testing.T) {
	def := kit.Definition{Name: catalog.Gateway, New: func(context.Context, kit.Deps) (kit.Service, error) { return opsService{}, nil }}
	r := kittest.Serve(t, def, map[string]string{catalog.EnvTokenKeys: kittest.TokenKeysPEM()})
	tests := []struct {
		base, path string
		status     int
		has        string
	}{
		{r.URL, "/hello", 200, `"api"`},
		{r.URL, "/healthz", 404, kit.CodeNotFound},
		{r.URL, "/readyz", 404, kit.CodeNotFound},
		{r.URL, "/metrics", 404, kit.CodeNotFound},
		{r.URL, "/detail", 404, kit.CodeNotFound},
		{r.OpsURL, "/healthz", 200, `"ok"`},
		{r.OpsURL, "/readyz", 200, `"ready"`},
		{r.OpsURL, "/metrics", 200, `switchboard_http_requests_total{code="200",method="GET",route="GET /hello",service="gateway"} 1`},
		{r.OpsURL, "/detail", 200, `"ops"`},
		{r.OpsURL, "/hello", 404, kit.CodeNotFound},
	}
	for _, tt := range tests {
		res, err := http.Get(tt.base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		port := "API"
		if tt.base == r.OpsURL {
			port = "ops"
		}
		if res.StatusCode != tt.status || !strings.Contains(string(b), tt.has) {
			t.Errorf("GET %s on the %s port: %d %.300s, want %d with %s", tt.path, port, res.StatusCode, b, tt.status, tt.has)
		}
	}
}

func TestLoadConfigReadsTheOpsAddress(t *testing.T) {
	env := map[string]string{catalog.EnvTokenKeys: kittest.TokenKeysPEM()}
	cfg, err := kit.LoadConfig(catalog.Gateway, kit.Needs{}, kit.MapEnv(env))
	if err != nil || cfg.OpsAddr != ":8081" {
		t.Fatalf("default OpsAddr %q, %v; want :8081", cfg.OpsAddr, err)
	}
	env[catalog.EnvOpsAddr] = "9090"
	if _, err := kit.LoadConfig(catalog.Gateway, kit.Needs{}, kit.MapEnv(env)); err == nil || !strings.Contains(err.Error(), catalog.EnvOpsAddr) {
		t.Fatalf("OPS_ADDR=9090: err %v, want it named", err)
	}
}
