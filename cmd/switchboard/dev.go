package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"

	"github.com/switchboard-dev/switchboard/services/catalog"
	"github.com/switchboard-dev/switchboard/services/local"
	"github.com/switchboard-dev/switchboard/services/registry"
)

// dev runs a whole platform in this process until ctx ends.
func dev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "gateway listen address")
	data := fs.String("data", "", "broker store directory (default: a fresh temp dir, removed on exit)")
	var avail []string
	for _, w := range registry.Available() {
		avail = append(avail, string(w))
	}
	workloads := fs.String("workloads", strings.Join(avail, ","), "comma-separated workloads to run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: dev takes no arguments, got %q", errUsage, fs.Args())
	}
	var ws []catalog.Workload
	for _, w := range strings.Split(*workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			ws = append(ws, catalog.Workload(w))
		}
	}
	if _, err := registry.Resolve(ws); err != nil {
		return err
	}
	log, err := newLogger(stderr, true)
	if err != nil {
		return err
	}
	p, err := local.Start(ctx, local.Options{Addr: *addr, DataDir: *data, Workloads: ws, Log: log, Env: tracingEnv(os.Getenv)})
	if err != nil {
		return err
	}
	defer p.Close()

	store, kept := *data, "new on every start: pass --data DIR to keep it"
	if store == "" {
		store = "a temp dir, removed on exit"
	} else {
		kept = "kept in " + store + ", with the token-signing key"
	}
	if err := banner.Execute(stdout, map[string]any{
		"Workloads": strings.Join(strings.Fields(strings.ReplaceAll(*workloads, ",", " ")), ", "),
		"NATS":      p.NATSURL, "Store": store, "Services": p.Services(), "URLs": p.URLs, "Gateway": p.GatewayURL,
		"Commerce": hasWorkload(ws, catalog.Commerce), "Streaming": hasWorkload(ws, catalog.Streaming),
		"Admin": p.Admin, "Kept": kept,
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready %s\n", p.GatewayURL)

	werr := p.Wait(ctx)
	fmt.Fprintln(stderr, "stopping…")
	if err := p.Close(); err != nil {
		return err
	}
	return werr
}

func hasWorkload(ws []catalog.Workload, w catalog.Workload) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

var banner = template.Must(template.New("banner").Parse(`Switchboard dev platform (workloads: {{.Workloads}})
  nats          {{.NATS}} (embedded JetStream, store: {{.Store}})
{{- range .Services}}
  {{printf "%-13s" .}} {{index $.URLs .}}{{if ne . "gateway"}} (mutual TLS: the gateway's certificate only){{end}}
{{- end}}

Admin (staff: products, stock, refunds, granting the admin role; {{.Kept}}):
  email         {{.Admin.Email}}
  password      {{.Admin.Password}}
{{if .Commerce}}
Try it:
  # register and log in
  curl -s -X POST {{.Gateway}}/api/user/users -H 'Content-Type: application/json' \
    -d '{"email":"ada@example.com","name":"Ada","password":"correct-horse"}'
  TOKEN=$(curl -s -X POST {{.Gateway}}/api/user/login -H 'Content-Type: application/json' \
    -d '{"email":"ada@example.com","password":"correct-horse"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  # list products
  curl -s {{.Gateway}}/api/product/products -H "Authorization: Bearer $TOKEN"
  # order one keyboard: answers 201 with "status":"confirmed"
  curl -s -X POST {{.Gateway}}/api/order/orders -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $(date +%s%N)" \
    -d '{"items":[{"productId":"keyboard","quantity":1}],"paymentMethod":"card","shippingAddress":"1 Main St"}'
  # sign out: the token is refused from now on, by every service
  curl -s -X POST {{.Gateway}}/api/user/logout -H "Authorization: Bearer $TOKEN"
  # log in as the admin and make another user an admin ("userId" from the sign-up's answer)
  ATOKEN=$(curl -s -X POST {{.Gateway}}/api/user/login -H 'Content-Type: application/json' \
    -d '{"email":"{{.Admin.Email}}","password":"{{.Admin.Password}}"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  curl -s -X POST {{.Gateway}}/api/user/admins -H "Authorization: Bearer $ATOKEN" \
    -H 'Content-Type: application/json' -d '{"userId":"<id>"}'
  # platform health
  curl -s {{.Gateway}}/health
{{end}}
{{- if .Streaming}}
Streaming (demo library seeded: big-buck-bunny, sintel, tears-of-steel, cosmos-laundromat, spring):
  # sign up on the basic plan (1 stream, up to 720p) and log in
  curl -s -X POST {{.Gateway}}/api/account/accounts -H 'Content-Type: application/json' \
    -d '{"email":"grace@example.com","password":"correct-horse","plan":"basic"}'
  STOKEN=$(curl -s -X POST {{.Gateway}}/api/account/login -H 'Content-Type: application/json' \
    -d '{"email":"grace@example.com","password":"correct-horse"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  # the library, encoded by the pipeline: "status":"ready" with renditions
  curl -s {{.Gateway}}/api/content/videos -H "Authorization: Bearer $STOKEN"
  # start watching from the EU: 201 with sessionId, manifestUrl, cdn and quality
  SESSION=$(curl -s -X POST {{.Gateway}}/api/playback/sessions -H "Authorization: Bearer $STOKEN" \
    -H 'Content-Type: application/json' -d '{"contentId":"big-buck-bunny","region":"eu"}' | sed -E 's/.*"sessionId":"([^"]+)".*/\1/')
  # heartbeat at 8 Mbps: quality adapts, capped at the plan's 720p
  curl -s -X POST {{.Gateway}}/api/playback/sessions/$SESSION/heartbeat -H "Authorization: Bearer $STOKEN" \
    -H 'Content-Type: application/json' -d '{"positionSec":42,"bandwidthKbps":8000,"bufferSec":20}'
  # a second device on the basic plan: 429
  curl -s -X POST {{.Gateway}}/api/playback/sessions -H "Authorization: Bearer $STOKEN" \
    -H 'Content-Type: application/json' -d '{"contentId":"sintel","region":"eu"}'
  # live viewers (push: curl -N {{.Gateway}}/api/analytics/live/stream -H "Authorization: Bearer $STOKEN")
  curl -s {{.Gateway}}/api/analytics/live -H "Authorization: Bearer $STOKEN"
  # stop; the history keeps the position for resume
  curl -s -X DELETE {{.Gateway}}/api/playback/sessions/$SESSION -H "Authorization: Bearer $STOKEN"
  curl -s {{.Gateway}}/api/playback/history -H "Authorization: Bearer $STOKEN"
  # what to watch next, with the A/B variant
  curl -s "{{.Gateway}}/api/recommendation/recommendations?limit=3" -H "Authorization: Bearer $STOKEN"
  # the streaming admin logs in at account with the same credentials
  SATOKEN=$(curl -s -X POST {{.Gateway}}/api/account/login -H 'Content-Type: application/json' \
    -d '{"email":"{{.Admin.Email}}","password":"{{.Admin.Password}}"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
{{end}}
Stop with Ctrl-C.
`))

// tracingEnv passes the tracing settings of dev's own environment to every
// service: OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 switchboard dev
// exports to a local Jaeger. Unset, each service keeps its recent traces
// for /debug/traces on its ops port, with no collector.
func tracingEnv(getenv func(string) string) map[string]string {
	env := map[string]string{}
	for _, k := range []string{catalog.EnvOTLPEndpoint, catalog.EnvTracesSampler, catalog.EnvTracesSamplerArg, catalog.EnvTraceBuffer} {
		if v := getenv(k); v != "" {
			env[k] = v
		}
	}
	return env
}
