package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchboard-dev/switchboard/internal/brokermon"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// BrokerPeerRemover removes servers from a broker's JetStream meta group,
// logged in as its system user. brokermon.PeerRemover is the real one;
// tests reach embedded servers with it.
type BrokerPeerRemover interface {
	Remove(ctx context.Context, url, user, password string, names []string) error
}

const (
	reasonPeerRemovalFailed = "BrokerPeerRemovalFailed"
	reasonPeersRemoved      = "BrokerPeersRemoved"
)

// removeDepartedPeers removes from the JetStream meta group the servers a
// scale-down took away. Until then they count in its quorum: a broker
// scaled from five servers to three would still need three of five to
// agree, and lose JetStream at the first failure. It runs after observe,
// from what the monitors said, and acts only on servers the meta leader
// sees offline whose ordinal the StatefulSet no longer has.
func (r *PlatformReconciler) removeDepartedPeers(ctx context.Context, s *reconcileState) error {
	obs := s.outcome.observed
	if r.BrokerPeers == nil || obs == nil || obs.jetstream == nil {
		return nil
	}
	gone := brokermon.Departed(obs.jetstream.servers, render.BrokerName(s.p), render.BrokerReplicas(s.p))
	if len(gone) == 0 {
		return nil
	}
	c := s.secrets.creds
	if err := r.BrokerPeers.Remove(ctx, render.BrokerURL(s.p), c.SystemUser, c.SystemPassword, gone); err != nil {
		return err
	}
	r.Recorder.Eventf(s.p, nil, corev1.EventTypeNormal, reasonPeersRemoved, "RemoveBrokerPeers",
		"removed %s from the JetStream meta group after the broker scaled down", strings.Join(gone, ", "))
	return nil
}
