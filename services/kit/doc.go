// Package kit is what every Switchboard microservice shares: configuration
// from env vars, an API server and an ops server (/healthz, /readyz, /metrics), JSON
// and error helpers, middleware (request id, slog access log, Prometheus
// metrics, 1 MiB body limit, JSON 404/405), EdDSA user tokens (a Signer
// for the issuing services, a KeySet and the shared Revocations for every
// verifier), passwords with per-email login throttling, the NATS
// JetStream bus (streams and buckets from the catalog, event envelope,
// durable consumers), a compare-and-set KV store, the service's identity
// (a certificate naming it, reloaded from TLS_DIR) and the internal gRPC
// server and client built on it (mutual TLS, a per-method caller policy
// from the catalog, deadlines, retries of idempotent methods, gobreaker).
//
// Every service runs with its identity. Its API port (HTTP_ADDR) speaks
// mutual TLS and admits the gateway's certificate alone; the gateway's own
// API port is plain HTTP behind the ingress. A service whose catalog row
// names gRPC services implements GRPCRegistrar, and Run serves them on
// GRPC_ADDR to the callers catalog.InternalMethods lists; Deps.GRPC builds
// the client of an upstream at <UPSTREAM>_GRPC. The ops port (OPS_ADDR)
// stays plain, for probes and scrapers.
//
// A service is a Definition: a name from the catalog, what it needs, and a
// Constructor. The binary looks definitions up in services/registry and
// hands them to Run, which serves the ops port's /healthz at once, connects to NATS,
// creates the service's streams and buckets, builds the service, then
// reports ready on /readyz. On context cancellation it stops in order (see
// shutdown): readiness fails, it keeps serving for SHUTDOWN_DRAIN,
// consumers stop pulling and finish what they hold, in-flight requests
// finish, and only then is the service's context cancelled and the broker
// connection drained.
//
//	var Definition = kit.Definition{Name: "account", Needs: kit.Needs{Auth: true}, New: New}
//
//	func New(ctx context.Context, d kit.Deps) (kit.Service, error) {
//		accounts, err := kit.NewStore[Account](d.Bus.Bucket("accounts"))
//		if err != nil {
//			return nil, err
//		}
//		s := &service{accounts: accounts, bus: d.Bus, tokens: d.Tokens}
//		return s, nil
//	}
//
//	func (s *service) Routes(mux *http.ServeMux) {
//		mux.HandleFunc("POST /accounts", s.create)
//		mux.HandleFunc("GET /accounts/{id}", kit.RequireAuth(s.tokens, s.get))
//	}
//
//	// Run starts background work and blocks until ctx ends.
//	func (s *service) Run(ctx context.Context) error {
//		err := s.bus.Consume(ctx, kit.ConsumerSpec{
//			Durable: "account-plans", // a consumer of the catalog row, which lists its subjects
//			Handler: s.onPlanChanged, // idempotent by ev.ID; return kit.ErrDuplicate if seen
//		})
//		if err != nil {
//			return err
//		}
//		<-ctx.Done()
//		return nil
//	}
//
//	func (s *service) create(w http.ResponseWriter, r *http.Request) {
//		req, err := kit.Decode[createRequest](r) // 400/413 as JSON errors
//		if err != nil {
//			kit.WriteError(w, r, err)
//			return
//		}
//		acc, err := s.app.Create(r.Context(), req) // logic lives in a plain type
//		if err != nil {
//			kit.WriteError(w, r, err) // *kit.Error keeps its status and code
//			return
//		}
//		kit.WriteJSON(w, http.StatusCreated, acc)
//	}
//
// State changes go through Store.Update(ctx, key, func(*T) error), which
// retries on a revision conflict, so replicas never lose writes. Events are
// published with Bus.Publish(ctx, kit.EventID(type, entity), entity, data),
// where data is the struct of services/events for the subject: the id is
// deterministic, becomes Nats-Msg-Id, and consumers drop what they have
// seen by that id. A message a consumer gives up on (its last delivery
// failed, ErrPermanent, or not an event) goes to the dead-letter stream,
// never dropped (see DeadLetter, DeadLetters, Replay). Streams and buckets
// keep min(BROKER_REPLICAS, 3) copies and their catalog share of
// BROKER_STORE_BYTES; each is created and updated by its owner among
// BROKER_SERVICES alone, and the other services wait for it.
//
// Errors: return *kit.Error (kit.Invalid, kit.NotFound, kit.Errorf …) and
// kit.WriteError renders {"error":{"code","message","field"}};
// ErrContention renders as a 503 with Retry-After. A gRPC handler returns
// the same, and the server sends it as a status with its code as the
// ErrorInfo reason (see ToStatus). The gRPC client's failures are 503
// dependency_unavailable *Errors that also match kit.ErrNotSent,
// kit.ErrBreakerOpen or kit.ErrAmbiguous with errors.Is; a typed client
// maps domain codes to its own errors with Reasons.
//
// Optional env knobs read through Config: UPSTREAM_TIMEOUT,
// UPSTREAM_ATTEMPTS, BREAKER_FAILURES, BREAKER_OPEN_FOR (see
// ClientOptionsFromEnv), SHUTDOWN_DRAIN, HTTP_READ_TIMEOUT,
// HTTP_WRITE_TIMEOUT, BROKER_REPLICAS, BROKER_STORE_BYTES, BROKER_SERVICES,
// LOG_LEVEL (read by the binary).
package kit
