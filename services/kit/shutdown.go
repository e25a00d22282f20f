package kit

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// stopping is what shutdown needs to stop a service.
type stopping struct {
	// notReady makes /readyz fail.
	notReady func()
	// drain is how long to keep serving after that; skipped when the
	// service never was ready, since no load balancer sends it anything.
	drain    time.Duration
	wasReady bool
	// grace bounds each later step.
	grace time.Duration
	// bus is the service's bus, nil if it has none (yet); grpc its gRPC
	// server, nil if it serves none (or is not built yet).
	bus     func() *Bus
	grpc    func() *GRPCServer
	servers []*http.Server
	// cancel ends the context the service, its handlers and its consumers
	// run in; svcDone then delivers Service.Run's return (nil if it has
	// returned already).
	cancel  context.CancelFunc
	svcDone <-chan error
}

// shutdown stops a service so that nothing in flight is lost:
//
//  1. readiness fails, so load balancers stop choosing this instance, and
//     the gRPC health service answers NOT_SERVING;
//  2. for the drain period everything still works and new connections are
//     still accepted, for the callers that chose it before they noticed
//     (on Kubernetes the pod's preStop sleep has already waited as long);
//  3. consumers stop pulling, and the messages they already hold are
//     handled, their handlers' context still alive: no delivery is spent
//     on a handler failing because the service is stopping;
//  4. the gRPC server stops taking connections and finishes the calls in
//     flight, then the HTTP servers, in order, close their listeners and
//     finish in-flight requests;
//  5. only then is the service's context cancelled, and Service.Run
//     awaited;
//  6. the broker connection drains, flushing what was published.
//
// Steps 3, 4 and 5 are each bounded by grace.
func shutdown(log *slog.Logger, s stopping) {
	s.notReady()
	var gs *GRPCServer
	if s.grpc != nil {
		gs = s.grpc()
	}
	if gs != nil {
		gs.Health().Shutdown()
	}
	if s.wasReady && s.drain > 0 {
		log.Info("draining before stopping", "for", s.drain)
		time.Sleep(s.drain)
	}
	if b := s.bus(); b != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.grace)
		b.StopConsuming(ctx)
		if ctx.Err() != nil {
			log.Warn("consumers did not finish in time; the rest of their messages will be redelivered", "grace", s.grace)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.grace)
	if gs != nil {
		gs.Shutdown(ctx)
	}
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("requests still in flight after the grace period", "err", err)
			_ = srv.Close()
		}
	}
	cancel()
	s.cancel()
	if s.svcDone != nil {
		select {
		case <-s.svcDone:
		case <-time.After(s.grace):
			log.Warn("the service did not stop in time", "grace", s.grace)
		}
	}
	if s.grpc != nil && gs == nil {
		// Built while stopping: it never served anyone it need drain.
		if late := s.grpc(); late != nil {
			late.Stop()
		}
	}
	if b := s.bus(); b != nil {
		b.Close()
	}
}
