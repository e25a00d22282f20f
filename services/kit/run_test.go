package kit_test

import (
	"context"
	"crypto/tls"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	accountv1 "github.com/switchboard-dev/switchboard/gen/switchboard/account/v1"

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

// Every service runs with an identity: without TLS_DIR (and none given in
// memory) Run refuses to start and names the variable; with another
// service's certificate it refuses too.
func TestRunNeedsItsOwnIdentity(t *testing.T) {
	def := kit.Definition{Name: catalog.Gateway, New: func(context.Context, kit.Deps) (kit.Service, error) { return opsService{}, nil }}
	cfg, err := kit.LoadConfig(catalog.Gateway, kit.Needs{}, kit.MapEnv(map[string]string{
		catalog.EnvTokenKeys: kittest.TokenKeysPEM(), catalog.EnvHTTPAddr: "127.0.0.1:0", catalog.EnvOpsAddr: "127.0.0.1:0"}))
	if err != nil {
		t.Fatal(err)
	}
	err = kit.Run(context.Background(), def, cfg, kit.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), catalog.EnvTLSDir+" is required") {
		t.Fatalf("no identity: %v, want it to name %s", err, catalog.EnvTLSDir)
	}
	err = kit.Run(context.Background(), def, cfg, kit.RunOptions{Identity: kittest.Platform(t).Identity(t, "order")})
	if err == nil || !strings.Contains(err.Error(), `names service "order"`) {
		t.Fatalf("order's identity for the gateway: %v", err)
	}
}

// A service's API port speaks mutual TLS and admits the gateway alone:
// another service of the platform, a client without a certificate and a
// plain-HTTP client never get an answer. The ops port stays plain.
func TestTheAPIPortAdmitsTheGatewayAlone(t *testing.T) {
	def := kit.Definition{Name: "notification", New: func(context.Context, kit.Deps) (kit.Service, error) { return opsService{}, nil }}
	r := kittest.Serve(t, def, kittest.StartNATS(t, "").Env())
	if !strings.HasPrefix(r.URL, "https://") {
		t.Fatalf("API URL %s", r.URL)
	}
	p := kittest.Platform(t)
	res, err := r.HTTP.Get(r.URL + "/hello")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the gateway: %v %v", res, err)
	}
	res.Body.Close()
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the server's certificate is not the point here
		MinVersion:         tls.VersionTLS13,
	}}}
	otherCA := kittest.NewPKI(t)
	for name, c := range map[string]*http.Client{
		"order, a service of the platform": p.HTTPClient(t, "order", "notification"),
		"the gateway of another CA":        otherCA.HTTPClient(t, catalog.Gateway, "notification"),
		"a client without a certificate":   noCert,
		"plain HTTP to the TLS port":       http.DefaultClient,
	} {
		u := r.URL
		if name == "plain HTTP to the TLS port" {
			u = "http://" + strings.TrimPrefix(r.URL, "https://")
		}
		res, err := c.Get(u + "/hello")
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK || strings.Contains(string(b), `"api"`) {
				t.Errorf("%s got the API: %d %s", name, res.StatusCode, b)
			}
		}
	}
	res, err = http.Get(r.OpsURL + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("the plain ops port: %v %v", res, err)
	}
	res.Body.Close()
}

// accountsAPI is a service whose catalog row (account) serves gRPC.
type accountsAPI struct {
	opsService
	accountv1.UnimplementedAccountsServer
	register bool
}

func (a *accountsAPI) RegisterGRPC(s *kit.GRPCServer) {
	if a.register {
		accountv1.RegisterAccountsServer(s, a)
	}
}

func (a *accountsAPI) GetAccount(_ context.Context, req *accountv1.GetAccountRequest) (*accountv1.GetAccountResponse, error) {
	return &accountv1.GetAccountResponse{Account: &accountv1.Account{Id: req.GetAccountId(), Plan: "basic"}}, nil
}

// Run serves the gRPC services a row names on GRPC_ADDR, with the
// standard health service, the catalog's policy and the service's
// identity; a service that does not register what its row names, or
// registers a gRPC API its row does not name, does not start.
func TestRunServesTheRowsGRPC(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	r := kittest.Serve(t, kit.Definition{Name: "account", New: func(context.Context, kit.Deps) (kit.Service, error) {
		return &accountsAPI{register: true}, nil
	}}, env)
	if r.GRPCAddr == "" {
		t.Fatal("no gRPC address for account")
	}
	ctx := context.Background()
	p := kittest.Platform(t)
	asContent := p.GRPCClient(t, "content", "account", r.GRPCAddr)
	if a, err := accountv1.NewAccountsClient(asContent).GetAccount(ctx, &accountv1.GetAccountRequest{AccountId: "a1"}); err != nil || a.GetAccount().GetPlan() != "basic" {
		t.Fatalf("content's GetAccount: %v %v", a, err)
	}
	h, err := healthpb.NewHealthClient(asContent).Check(ctx, &healthpb.HealthCheckRequest{Service: "switchboard.account.v1.Accounts"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}
	asOrder := p.GRPCClient(t, "order", "account", r.GRPCAddr)
	if _, err := accountv1.NewAccountsClient(asOrder).GetAccount(ctx, &accountv1.GetAccountRequest{AccountId: "a1"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("order's GetAccount: %v", err)
	}

	for name, tt := range map[string]struct {
		service string
		svc     kit.Service
		want    string
	}{
		"a row's gRPC not registered": {"account", &accountsAPI{}, "registers none"},
		"gRPC its row does not name":  {"notification", &accountsAPI{register: true}, "names no gRPC service"},
	} {
		t.Run(name, func(t *testing.T) {
			e := maps.Clone(env)
			e[catalog.EnvHTTPAddr], e[catalog.EnvOpsAddr], e[catalog.EnvGRPCAddr] = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			cfg, err := kit.LoadConfig(tt.service, kit.Needs{}, kit.MapEnv(e))
			if err != nil {
				t.Fatal(err)
			}
			def := kit.Definition{Name: tt.service, New: func(context.Context, kit.Deps) (kit.Service, error) { return tt.svc, nil }}
			err = kit.Run(ctx, def, cfg, kit.RunOptions{Identity: p.Identity(t, tt.service), ShutdownGrace: time.Second})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// On a stop, the gRPC health service answers NOT_SERVING with readiness,
// while calls are still served for the drain; then the server stops.
func TestGRPCDrainsWithTheService(t *testing.T) {
	env := kittest.StartNATS(t, "").Env()
	// Long enough for the call below to land inside it on a loaded machine.
	env[catalog.EnvShutdownDrain] = "4s"
	r := kittest.Serve(t, kit.Definition{Name: "account", New: func(context.Context, kit.Deps) (kit.Service, error) {
		return &accountsAPI{register: true}, nil
	}}, env)
	ctx := context.Background()
	asContent := kittest.Platform(t).GRPCClient(t, "content", "account", r.GRPCAddr)
	health, accounts := healthpb.NewHealthClient(asContent), accountv1.NewAccountsClient(asContent)
	stopped := make(chan error, 1)
	go func() { stopped <- r.Stop() }()
	kittest.Eventually(t, 5*time.Second, "health to answer NOT_SERVING", func() bool {
		h, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "switchboard.account.v1.Accounts"})
		return err == nil && h.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if _, err := accounts.GetAccount(ctx, &accountv1.GetAccountRequest{AccountId: "a1"}); err != nil {
		t.Fatalf("a call during the drain: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := accounts.GetAccount(ctx, &accountv1.GetAccountRequest{AccountId: "a1"}); err == nil {
		t.Fatal("a call after the stop was served")
	}
}
