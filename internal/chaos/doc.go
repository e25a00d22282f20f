// Package chaos is the chaos run of issue 12: the commerce platform, run
// as separate processes exactly as rendered for a cluster, takes orders
// for scarce stock while a seeded schedule kills, pauses and restarts its
// parts; once it is quiet, the stores are read directly and every
// invariant about money, stock, points and notifications is checked.
//
// # Processes
//
// The harness does the kubelet's and kube-proxy's part for a rendered
// Platform (render.Platform, with secrets kept as the operator keeps
// them), so the processes get the production configuration: the broker's
// nats.conf with one user per service and its permissions, the service
// certificates, the token keys, every env var. One function, assemble,
// turns a rendered container into a process:
//
//   - the binary: `switchboard serve <svc>` built from this module for
//     the services image, a nats-server built from the module go.mod
//     requires for the broker image (its metrics sidecar is not run);
//   - env from values, Secrets, ConfigMaps and the downward API, $(VAR)
//     expanded;
//   - every volume a directory of the pod: Secrets and ConfigMaps written
//     as files, claims and emptyDirs kept across restarts (the broker's
//     JetStream store survives its SIGKILL);
//   - three rewrites, since there is no pod network or mount namespace:
//     container ports to the pod's loopback ports (internal/loopback),
//     mount paths to the pod's directories, in-cluster Service addresses
//     to where the harness routes them;
//   - last, the harness's own settings (harnessEnv): a short SAGA_LEASE,
//     a cheap bcrypt, the SMTP mailbox, a rate limit that does not treat
//     every customer (all on 127.0.0.1) as one caller.
//
// A Service that selects one pod routes straight to it; one that selects
// several (order, product and payment run two replicas) gets an L4
// round-robin proxy, which skips pods whose rendered readiness probe
// fails and fails over when a pod refuses the connection. Mutual TLS
// passes through it untouched.
//
// # Load and faults
//
// Customers sign up and log in through the gateway, then place orders of
// one or two lines for six products whose stock meets 20% to 120% of
// their demand, some with the processor's declined method, each with its
// own Idempotency-Key, retrying a connection error, a 429 or a 5xx
// without a final order with the same key. Faults fire at seeded points of
// the load's progress: SIGKILL of an order, product or payment replica
// and its restart after a short delay; SIGSTOP of one for over twice the
// saga lease, then SIGCONT; SIGKILL of the broker and its restart on the
// same store. The seed fixes the workload and the schedule, not the
// interleaving of the processes, so a failing seed reproduces the same
// conditions, and usually the same kind of violation.
//
// # Checks
//
// Quiescence is every order settled (final, nothing owed, no outbox), the
// commerce consumers caught up and nothing reserved; the wait ends early
// when nothing moves for Stall. Then the invariants (see Invariants) are
// checked on the stores, read as the broker's administrative user, with
// record types of this package where the services' are unexported. Stock
// conservation is also checked at every revision of a stock record the
// harness sees during the run. A mailbox standing in for the e-mail relay
// counts the mails actually sent, which notification records alone cannot
// show.
package chaos
