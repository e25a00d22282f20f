// Package catalog is the single source of truth for Switchboard's service
// topology: which services exist, which workload each belongs to, whom it
// calls synchronously, which events it publishes, which durable consumers
// read the events it consumes, where it keeps state, which env vars carry
// its configuration and how it scales by default.
//
// The operator reads it to render Deployments and wire env vars; the services
// read it to know their streams, buckets and subjects. Change the topology here
// and both sides follow.
package catalog

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Workload is a group of services that is enabled or disabled as a whole.
type Workload string

const (
	Commerce  Workload = "commerce"
	Streaming Workload = "streaming"
)

// Workloads lists every workload, in a stable order.
var Workloads = []Workload{Commerce, Streaming}

// HTTPPort is the container port every service listens on (env HTTP_ADDR).
const HTTPPort = 8080

// GRPCPort is the container port of a service's internal gRPC API (env
// GRPC_ADDR), served with mutual TLS to the services that call it (see
// Callers) by every service whose row names GRPC services.
const GRPCPort = 9090

// Env vars every service reads (services/kit) and the operator renders
// (internal/render). Upstream URLs follow EnvURL.
const (
	EnvHTTPAddr = "HTTP_ADDR"
	// EnvGRPCAddr is the listen address of the internal gRPC API, ":9090"
	// by default; only services that serve gRPC read it.
	EnvGRPCAddr = "GRPC_ADDR"
	// EnvTLSDir names the directory holding the service's identity: its
	// certificate and key (tls.crt, tls.key) and the Platform's CA bundle
	// (ca.crt), as a kubernetes.io/tls Secret mounts them. The files are
	// replaced in place when the operator renews the certificate.
	EnvTLSDir  = "TLS_DIR"
	EnvNATSURL = "NATS_URL"
	// EnvNATSUser and EnvNATSPassword are the service's own broker user,
	// whose permissions the operator derives from its row.
	EnvNATSUser     = "NATS_USER"
	EnvNATSPassword = "NATS_PASSWORD"

	// EnvTokenKeys holds the PEM public keys (one or two, during a
	// rotation) that verify user tokens; every service that verifies
	// tokens reads it. Public keys are not secret.
	EnvTokenKeys = "TOKEN_KEYS"
	// EnvTokenSigningKey holds the PEM Ed25519 private key that signs user
	// tokens. Only the services that issue tokens read it.
	EnvTokenSigningKey = "TOKEN_SIGNING_KEY"
	// EnvTokenTTL is how long an issued token lasts (optional,
	// DefaultTokenTTL; at most MaxTokenTTL).
	EnvTokenTTL = "TOKEN_TTL"
	// EnvAdminEmail and EnvAdminPassword name the first admin, whom the
	// issuing services ensure at start-up (both optional, set together).
	EnvAdminEmail    = "ADMIN_EMAIL"
	EnvAdminPassword = "ADMIN_PASSWORD"
	// EnvLoginLockAfter (failed logins in a row, default 10) and
	// EnvLoginLockFor (a duration, default 15m) tune login throttling.
	EnvLoginLockAfter = "LOGIN_LOCK_AFTER"
	EnvLoginLockFor   = "LOGIN_LOCK_FOR"

	// EnvBrokerReplicas is the broker's server count (spec.broker.replicas,
	// default 1). Streams and buckets are kept at StreamReplicas of it, and
	// a service that starts with a new count updates them in place.
	EnvBrokerReplicas = "BROKER_REPLICAS"
	// EnvBrokerStoreBytes is each broker server's JetStream store in bytes
	// (spec.broker.jetstream.size). Every stream and bucket is bounded to
	// its StoreShare of it; unset means no byte limits (a dev broker whose
	// store is the disk).
	EnvBrokerStoreBytes = "BROKER_STORE_BYTES"
	// EnvShutdownDrain is how long a stopping service keeps serving with
	// readiness failed, so that load balancers stop sending it work before
	// its listeners close (a duration, default DefaultShutdownDrain; "0s"
	// skips it). The operator renders a preStop sleep of the same length.
	EnvShutdownDrain = "SHUTDOWN_DRAIN"
	// EnvHTTPReadTimeout and EnvHTTPWriteTimeout bound reading a request
	// and writing its answer (durations, defaults DefaultHTTPReadTimeout and
	// DefaultHTTPWriteTimeout). A streaming answer (server-sent events)
	// extends both each time it flushes.
	EnvHTTPReadTimeout  = "HTTP_READ_TIMEOUT"
	EnvHTTPWriteTimeout = "HTTP_WRITE_TIMEOUT"
	// EnvHeartbeatMinInterval is the least time between two heartbeats of
	// one playback session (a duration, default
	// DefaultHeartbeatMinInterval; 0s turns the limit off); one sooner is
	// answered 429.
	EnvHeartbeatMinInterval = "HEARTBEAT_MIN_INTERVAL"

	// Tracing, with OpenTelemetry's standard names. EnvOTLPEndpoint is the
	// collector spans are exported to over OTLP/gRPC (a URL such as
	// http://collector.observability:4317; spec.observability.otlpEndpoint);
	// unset, spans only feed the service's buffer of recent traces.
	EnvOTLPEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	// EnvTracesSampler and EnvTracesSamplerArg choose which traces are
	// recorded: always_on, always_off, traceidratio or their parentbased_
	// forms (default parentbased_always_on), the ratio a number in [0, 1].
	// The operator renders parentbased_traceidratio with
	// spec.observability.samplingRatio.
	EnvTracesSampler    = "OTEL_TRACES_SAMPLER"
	EnvTracesSamplerArg = "OTEL_TRACES_SAMPLER_ARG"
	// EnvTraceBuffer is how many recent traces a service keeps in memory
	// for GET /debug/traces on its ops port (a positive integer, default
	// 512).
	EnvTraceBuffer = "TRACE_BUFFER_TRACES"
)

// Shutdown timing. A stopping service fails readiness and drains for
// DefaultShutdownDrain, then stops its consumers and HTTP servers, each
// bounded by DefaultShutdownGrace.
const (
	DefaultShutdownDrain = 5 * time.Second
	DefaultShutdownGrace = 15 * time.Second
	// BrokerDrainTimeout bounds the last step of a stop: the broker
	// connection flushing what was published and acknowledged.
	BrokerDrainTimeout = 5 * time.Second
)

// TerminationGracePeriod is how long a pod may take to stop: the preStop
// sleep and the service's own drain (each drain long), its consumers and
// its HTTP servers (each up to DefaultShutdownGrace), and the broker
// connection's drain.
func TerminationGracePeriod(drain time.Duration) time.Duration {
	return 2*drain + 2*DefaultShutdownGrace + BrokerDrainTimeout
}

// HTTP server timeouts. The write timeout outlasts the longest answer a
// service composes (the gateway waits up to 15 s for an upstream's header).
const (
	DefaultHTTPReadTimeout  = 30 * time.Second
	DefaultHTTPWriteTimeout = 60 * time.Second
)

// DefaultHeartbeatMinInterval: players send a heartbeat every few seconds;
// one a second is already more than any player needs.
const DefaultHeartbeatMinInterval = time.Second

// MaxStreamReplicas caps the copies of a stream or bucket: three survive
// the loss of one server, and more only slow every write down.
const MaxStreamReplicas = 3

// StreamReplicas is the replica count of every stream and bucket on a
// broker of brokerReplicas servers.
func StreamReplicas(brokerReplicas int) int {
	return min(max(brokerReplicas, 1), MaxStreamReplicas)
}

// Token lifetimes. The revocation bucket keeps an entry for MaxTokenTTL, so
// a revoked token stays revoked for the rest of its life.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 24 * time.Hour
)

// TokenUse is what a service does with user tokens.
type TokenUse int

const (
	// NoTokens: the service never sees a token.
	NoTokens TokenUse = iota
	// VerifyTokens: it checks tokens with the public keys (EnvTokenKeys).
	VerifyTokens
	// IssueTokens: it also signs them (EnvTokenSigningKey) and revokes
	// them on sign-out.
	IssueTokens
)

// Autoscaling is a service's default HorizontalPodAutoscaler shape.
type Autoscaling struct {
	MinReplicas                    int32
	MaxReplicas                    int32
	TargetCPUUtilizationPercentage int32
	// TargetMemoryUtilizationPercentage is 0 for no memory target.
	TargetMemoryUtilizationPercentage int32
}

// LagScaling is a service's default queue-lag autoscaling: where KEDA is
// installed, the operator scales the service on the backlog of these
// durable consumers as well as on CPU.
type LagScaling struct {
	// Durables name the consumers (of Consumers) whose backlog counts.
	Durables []string
	// LagThreshold is the backlog per replica to aim for.
	LagThreshold int64
}

// Service describes one microservice.
type Service struct {
	// Name is the DNS-safe service name, also the argument of `switchboard serve`.
	Name string
	// Workloads that include this service. The gateway belongs to every workload.
	Workloads []Workload
	// Port is the HTTP container port.
	Port int32
	// Upstreams are the services this one calls. The gateway forwards the
	// public API to them over REST with mutual TLS, each at <UPSTREAM>_URL
	// (see EnvURL); every other service calls their internal gRPC API (see
	// InternalMethods), each at <UPSTREAM>_GRPC (see EnvGRPC).
	Upstreams []string
	// Publishes are the NATS subjects of the events it produces; the bus
	// refuses any other.
	Publishes []string
	// Consumers are its durable consumers: the only way it reads events.
	// A message one of them cannot handle goes to the dead-letter stream,
	// so a service with consumers also publishes its DeadLetters.
	Consumers []Consumer
	// Buckets are the JetStream KeyValue buckets it writes (see KVBuckets
	// for their settings).
	Buckets []string
	// Reads are the buckets it reads and watches but never writes.
	Reads []string
	// Tokens says whether it verifies or issues user tokens. One that
	// verifies them and talks to the broker reads TokenRevocations.
	Tokens TokenUse
	// Replicas is the default replica count when not autoscaled.
	Replicas int32
	// Autoscaling is the default HPA; nil means a fixed replica count.
	Autoscaling *Autoscaling
	// LagScaling turns queue-lag autoscaling on by default; nil leaves it off.
	LagScaling *LagScaling
	// Public services accept traffic from outside the platform (NetworkPolicy, Service type).
	Public bool
	// GRPC names the gRPC services (full protobuf names, from proto/) it
	// serves on GRPCPort to its Callers.
	GRPC []string
}

// ServesGRPC reports whether s serves an internal gRPC API on GRPCPort.
func (s Service) ServesGRPC() bool { return len(s.GRPC) > 0 }

// UsesBroker reports whether s talks to NATS at all: it keeps state,
// watches a bucket or exchanges events. Only those get a broker user.
func (s Service) UsesBroker() bool {
	return len(s.Buckets)+len(s.Reads)+len(s.Publishes)+len(s.Consumers) > 0
}

// InboxPrefix is the prefix of the reply subjects of service's broker
// connection (nats.CustomInboxPrefix). Each service has its own, and its
// broker user may subscribe below its own only, so no service reads the
// replies (JetStream acks, API answers, consumed messages) of another.
func InboxPrefix(service string) string { return "_INBOX_" + service }

// Consumer is a durable JetStream consumer. The replicas of a service share
// it, so each event is handled by one of them. Its subjects lie in one
// stream, and its name is the service's, or starts with it and a dash, so no
// two services ever share one. It reads one subject, or all those of its
// stream (see Filter).
type Consumer struct {
	Durable  string
	Subjects []string
	// Replaces names a durable of an earlier release whose subjects this
	// one (with the others replacing it) took over. The first replica
	// that creates this one starts it where the former durable's
	// acknowledgements end, and once all of them exist the former one is
	// deleted (see kit's CreateConsumer): nothing it had not acknowledged
	// is lost.
	Replaces string
}

// Consumes lists the subjects s reads, over all its consumers.
func (s Service) Consumes() []string {
	var out []string
	for _, c := range s.Consumers {
		out = append(out, c.Subjects...)
	}
	return out
}

// DeadLetters lists the subjects s dead-letters to: one per consumer, in
// DeadLetterStream.
func (s Service) DeadLetters() []string {
	var out []string
	for _, c := range s.Consumers {
		out = append(out, DeadLetterSubject(s.Name, c.Durable))
	}
	return out
}

// Consumer returns the consumer of s named durable.
func (s Service) Consumer(durable string) (Consumer, bool) {
	i := slices.IndexFunc(s.Consumers, func(c Consumer) bool { return c.Durable == durable })
	if i < 0 {
		return Consumer{}, false
	}
	return s.Consumers[i], true
}

// Stream is a JetStream stream holding the events of one domain.
type Stream struct {
	Name     string
	Subjects []string
	// MaxAge is how long an event is kept.
	MaxAge time.Duration
	// StoreShare is the part of each broker server's JetStream store the
	// stream may hold, in thousandths (see MaxBytes).
	StoreShare int64
	// DiscardNew refuses new messages when the stream is full. Event
	// streams discard their oldest events instead: those are facts already
	// stored by their producer, and a flood of one kind only pushes out old
	// events of that kind.
	DiscardNew bool
}

// MaxBytes is the byte limit of a StoreShare on a store of storeBytes, or
// -1 (no limit) when the store's size is unknown.
func MaxBytes(share, storeBytes int64) int64 {
	if storeBytes <= 0 {
		return -1
	}
	return max(storeBytes*share/1000, 1)
}

// StoreShareLimit bounds the sum of every stream's and bucket's
// StoreShare, in thousandths: a quarter of the store stays free for the
// broker's own use (the JetStream meta log and raft logs of a cluster,
// file-store blocks not yet compacted), and so JetStream can reserve every
// limit at once.
const StoreShareLimit = 750

// Event subjects. Services publish and consume these exact strings.
const (
	OrderCreated   = "order.created"
	OrderConfirmed = "order.confirmed"
	OrderCancelled = "order.cancelled"
	OrderRefunded  = "order.refunded"

	PaymentCompleted = "payment.completed"
	PaymentFailed    = "payment.failed"
	PaymentRefunded  = "payment.refunded"

	UserRegistered = "user.registered"

	AccountCreated     = "account.created"
	AccountPlanChanged = "account.plan_changed"

	ContentCreated         = "content.created"
	ContentEncodeRequested = "content.encode.requested"
	ContentEncoded         = "content.encoded"

	PlaybackStarted   = "playback.started"
	PlaybackHeartbeat = "playback.heartbeat"
	PlaybackStopped   = "playback.stopped"
)

// DeadLetterStream holds the messages consumers could not handle: those
// that exhausted their deliveries, failed permanently or could not be
// decoded. `switchboard dlq` lists and replays them.
const DeadLetterStream = "DLQ"

// DeadLetterSubject is where a service's consumer durable dead-letters a
// message: dlq.<service>.<durable>. A service publishes to the subjects of
// its own consumers only (see Service.DeadLetters).
func DeadLetterSubject(service, durable string) string {
	return "dlq." + service + "." + durable
}

// Streams are created and updated by their owner (StreamOwner); every
// other service that publishes or consumes one of their subjects waits
// for them to exist, so start-up order does not matter.
//
// Each is bounded in bytes (StoreShare) and in age. Streaming's
// high-rate PLAYBACK has the largest share, all its own: a flood of
// playback events discards old playback events and never takes space from
// commerce's streams or any bucket, whose shares JetStream reserves.
var Streams = []Stream{
	{Name: "USERS", Subjects: []string{"user.>"}, MaxAge: 7 * 24 * time.Hour, StoreShare: 10},
	{Name: "ORDERS", Subjects: []string{"order.>"}, MaxAge: 7 * 24 * time.Hour, StoreShare: 60},
	{Name: "PAYMENTS", Subjects: []string{"payment.>"}, MaxAge: 7 * 24 * time.Hour, StoreShare: 40},
	{Name: "ACCOUNTS", Subjects: []string{"account.>"}, MaxAge: 7 * 24 * time.Hour, StoreShare: 10},
	{Name: "CONTENT", Subjects: []string{"content.>"}, MaxAge: 7 * 24 * time.Hour, StoreShare: 20},
	{Name: "PLAYBACK", Subjects: []string{"playback.>"}, MaxAge: 24 * time.Hour, StoreShare: 250},
	// Dead letters are kept until replayed: never aged out, and when the
	// stream is full a new one is refused, so the consumer keeps the
	// message and retries rather than anything being dropped.
	{Name: DeadLetterStream, Subjects: []string{"dlq.>"}, StoreShare: 30, DiscardNew: true},
}

// Bucket is a JetStream KeyValue bucket and its settings.
type Bucket struct {
	Name string
	// TTL removes an entry this long after its last write; 0 keeps it.
	TTL time.Duration
	// StoreShare is the part of each broker server's JetStream store the
	// bucket may hold, in thousandths (see MaxBytes). A full bucket refuses
	// writes; it never drops entries.
	StoreShare int64
}

// TokenRevocations holds the ids (jti) of signed-out tokens until they
// would have expired anyway. The issuing services write it; every other
// service that verifies tokens and talks to the broker watches it.
const TokenRevocations = "token-revocations"

// KVBuckets lists every bucket a service writes or reads, with its
// settings. Its owner (BucketOwner) creates and updates it; the other
// services using it wait for it to exist.
var KVBuckets = []Bucket{
	{Name: "users", StoreShare: 30}, {Name: "user-emails", StoreShare: 10}, {Name: "user-points", StoreShare: 10},
	// Failed-login counters are forgotten a while after the last failure.
	{Name: "user-logins", TTL: time.Hour, StoreShare: 5},
	{Name: "products", StoreShare: 10}, {Name: "stock", StoreShare: 10},
	{Name: "orders", StoreShare: 60},
	{Name: "payments", StoreShare: 30},
	{Name: "notifications", StoreShare: 40},
	{Name: "accounts", StoreShare: 20}, {Name: "account-emails", StoreShare: 10},
	{Name: "account-logins", TTL: time.Hour, StoreShare: 5},
	{Name: "videos", StoreShare: 10},
	{Name: "sessions", StoreShare: 20}, {Name: "watch-history", StoreShare: 30},
	{Name: "analytics", StoreShare: 10},
	{Name: "recommendations", StoreShare: 15},
	// An entry outlives the token it revokes: written at most MaxTokenTTL
	// before the token expires, plus the verifiers' clock leeway.
	{Name: TokenRevocations, TTL: MaxTokenTTL + time.Minute, StoreShare: 5},
}

// BucketFor returns the settings of a bucket.
func BucketFor(name string) (Bucket, error) {
	i := slices.IndexFunc(KVBuckets, func(b Bucket) bool { return b.Name == name })
	if i < 0 {
		return Bucket{}, fmt.Errorf("catalog: no bucket %q in KVBuckets", name)
	}
	return KVBuckets[i], nil
}

// Gateway is the name of the API gateway service.
const Gateway = "gateway"

// services is the table. Keep it sorted by workload, then by call depth.
var services = []Service{
	{
		Name:      Gateway,
		Workloads: []Workload{Commerce, Streaming},
		Port:      HTTPPort,
		Upstreams: []string{"user", "product", "order", "payment", "notification", "account", "content", "playback", "analytics", "recommendation"},
		Replicas:  2,
		Public:    true,
		// The gateway checks signature, expiry and roles only: it has no
		// broker access, so the services behind it enforce revocation.
		Tokens: VerifyTokens,
	},
	// Commerce.
	{
		Name:      "user",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Publishes: []string{UserRegistered},
		Consumers: []Consumer{{Durable: "user-points", Subjects: []string{OrderConfirmed}}},
		Buckets:   []string{"users", "user-emails", "user-points", "user-logins", TokenRevocations},
		Replicas:  1,
		Tokens:    IssueTokens,
	},
	{
		Name:      "product",
		Workloads: []Workload{Commerce},
		GRPC:      []string{"switchboard.product.v1.Stock"},
		Port:      HTTPPort,
		Buckets:   []string{"products", "stock"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:      "order",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		Upstreams: []string{"product", "payment"},
		Publishes: []string{OrderCreated, OrderConfirmed, OrderCancelled, OrderRefunded},
		Buckets:   []string{"orders"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:      "payment",
		Workloads: []Workload{Commerce},
		GRPC:      []string{"switchboard.payment.v1.Payments"},
		Port:      HTTPPort,
		Publishes: []string{PaymentCompleted, PaymentFailed, PaymentRefunded},
		Buckets:   []string{"payments"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:      "notification",
		Workloads: []Workload{Commerce},
		Port:      HTTPPort,
		// One durable per subject, so the broker pins each one's filter:
		// notification may not read order.created or payment.refunded.
		// Each event makes its own notification, in any order.
		Consumers: []Consumer{
			{Durable: "notification-order-confirmed", Subjects: []string{OrderConfirmed}, Replaces: "notification-orders"},
			{Durable: "notification-order-cancelled", Subjects: []string{OrderCancelled}, Replaces: "notification-orders"},
			{Durable: "notification-order-refunded", Subjects: []string{OrderRefunded}, Replaces: "notification-orders"},
			{Durable: "notification-payment-completed", Subjects: []string{PaymentCompleted}, Replaces: "notification-payments"},
			{Durable: "notification-payment-failed", Subjects: []string{PaymentFailed}, Replaces: "notification-payments"},
		},
		Buckets:  []string{"notifications"},
		Reads:    []string{TokenRevocations},
		Replicas: 1,
		// Sending is slow (a provider call per message): a small backlog
		// already deserves another replica.
		LagScaling: &LagScaling{Durables: []string{"notification-order-confirmed", "notification-order-cancelled", "notification-order-refunded", "notification-payment-completed", "notification-payment-failed"}, LagThreshold: 20},
		Tokens:     VerifyTokens,
	},
	// Streaming.
	{
		Name:      "account",
		Workloads: []Workload{Streaming},
		GRPC:      []string{"switchboard.account.v1.Accounts"},
		Port:      HTTPPort,
		Publishes: []string{AccountCreated, AccountPlanChanged},
		Buckets:   []string{"accounts", "account-emails", "account-logins", TokenRevocations},
		Replicas:  1,
		Tokens:    IssueTokens,
	},
	{
		Name:      "content",
		Workloads: []Workload{Streaming},
		GRPC:      []string{"switchboard.content.v1.Library"},
		Port:      HTTPPort,
		Upstreams: []string{"account"},
		Publishes: []string{ContentCreated, ContentEncodeRequested, ContentEncoded},
		// One shared durable: each encode job is done once, by any replica.
		Consumers: []Consumer{{Durable: "content-encoder", Subjects: []string{ContentEncodeRequested}}},
		Buckets:   []string{"videos"},
		Reads:     []string{TokenRevocations},
		Replicas:  1,
		Tokens:    VerifyTokens,
	},
	{
		Name:        "playback",
		Workloads:   []Workload{Streaming},
		Port:        HTTPPort,
		Upstreams:   []string{"account", "content"},
		Publishes:   []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped},
		Buckets:     []string{"sessions", "watch-history"},
		Reads:       []string{TokenRevocations},
		Autoscaling: &Autoscaling{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 70},
		Tokens:      VerifyTokens,
	},
	{
		Name:        "analytics",
		Workloads:   []Workload{Streaming},
		Port:        HTTPPort,
		Consumers:   []Consumer{{Durable: "analytics", Subjects: []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped}}},
		Buckets:     []string{"analytics"},
		Reads:       []string{TokenRevocations},
		Autoscaling: &Autoscaling{MinReplicas: 2, MaxReplicas: 6, TargetCPUUtilizationPercentage: 70},
		// Heartbeats arrive at a high rate and each is cheap to count.
		LagScaling: &LagScaling{Durables: []string{"analytics"}, LagThreshold: 100},
		Tokens:     VerifyTokens,
	},
	{
		Name:      "recommendation",
		Workloads: []Workload{Streaming},
		Port:      HTTPPort,
		Consumers: []Consumer{
			{Durable: "recommendation-playback", Subjects: []string{PlaybackStarted, PlaybackHeartbeat, PlaybackStopped}},
			{Durable: "recommendation-content", Subjects: []string{ContentEncoded}},
		},
		Buckets:  []string{"recommendations"},
		Reads:    []string{TokenRevocations},
		Replicas: 1,
		Tokens:   VerifyTokens,
	},
}

// All returns every service, gateway first. The slice is a copy.
func All() []Service { return slices.Clone(services) }

// Callers are the services that list name among their Upstreams, in table
// order: the only services that may call it. The gateway, which forwards
// the public API, is a caller of every service it routes to.
func Callers(name string) []string {
	var out []string
	for _, s := range services {
		if slices.Contains(s.Upstreams, name) {
			out = append(out, s.Name)
		}
	}
	return out
}

// Lookup returns the named service.
func Lookup(name string) (Service, bool) {
	for _, s := range services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// ForWorkloads returns the services that belong to any of the given
// workloads, each once, in table order.
func ForWorkloads(ws ...Workload) []Service {
	var out []Service
	for _, s := range services {
		if slices.ContainsFunc(s.Workloads, func(w Workload) bool { return slices.Contains(ws, w) }) {
			out = append(out, s)
		}
	}
	return out
}

// Names returns the names of the given services.
func Names(ss []Service) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// ValidWorkload reports whether w names a known workload.
func ValidWorkload(w Workload) bool { return slices.Contains(Workloads, w) }

// EnvURL is the env var that carries the base URL of an upstream's REST
// API, which only the gateway calls: "product" → "PRODUCT_URL". Other
// services reach their upstreams at EnvGRPC.
func EnvURL(upstream string) string {
	return strings.ToUpper(strings.ReplaceAll(upstream, "-", "_")) + "_URL"
}

// StreamFor returns the stream that stores a subject.
func StreamFor(subject string) (Stream, error) {
	for _, st := range Streams {
		for _, pattern := range st.Subjects {
			if prefix, ok := strings.CutSuffix(pattern, ">"); ok && strings.HasPrefix(subject, prefix) {
				return st, nil
			}
			if pattern == subject {
				return st, nil
			}
		}
	}
	return Stream{}, fmt.Errorf("catalog: no stream holds subject %q", subject)
}

// VerifiesTokens reports whether s checks user tokens (issuers do too).
func (s Service) VerifiesTokens() bool { return s.Tokens != NoTokens }

// IssuesTokens reports whether s signs user tokens and so holds the private
// key.
func (s Service) IssuesTokens() bool { return s.Tokens == IssueTokens }

// UsesBucket reports whether s writes or reads the named bucket.
func (s Service) UsesBucket(name string) bool {
	return slices.Contains(s.Buckets, name) || slices.Contains(s.Reads, name)
}
