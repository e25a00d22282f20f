// Package streaming holds the streaming workload's end-to-end test and
// benchmarks. The services themselves live in services/account, content,
// playback, analytics and recommendation; this package runs them together
// (with the gateway, on an embedded NATS) the way `switchboard dev` does.
package streaming
