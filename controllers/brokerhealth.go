package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/internal/brokermon"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// BrokerMonitor reads one broker server's HTTP monitor. brokermon.Client
// is the real one; tests point one at an embedded nats-server.
type BrokerMonitor interface {
	Server(ctx context.Context, baseURL string) (*brokermon.Server, error)
}

// ConditionBrokerStorage says how full JetStream's store is on the fullest
// broker server: False above storageWarnRatio.
const ConditionBrokerStorage = "BrokerStorage"

const (
	reasonStorageAvailable   = "StorageAvailable"
	reasonStorageNearlyFull  = "StorageNearlyFull"
	reasonMonitorUnreachable = "MonitorUnreachable"
	reasonBrokerNotReady     = "BrokerNotReady"
	reasonNoMetaLeader       = "NoMetaLeader"
)

// storageWarnRatio is the share of the store above which BrokerStorage
// turns False: at 100 % every JetStream write fails, orders included.
const storageWarnRatio = 0.8

// brokerPollInterval is how often a Platform is reconciled to read its
// broker's monitor again: storage fills without any Kubernetes event.
const brokerPollInterval = 30 * time.Second

// brokerStorageRatio is the metric of BrokerStorage, per server.
var brokerStorageRatio = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "switchboard_broker_jetstream_storage_used_ratio",
	Help: "Share of its JetStream store (file, or memory without a file store) that each broker server uses, from its monitor; BrokerStorage turns False above 0.8.",
}, []string{"namespace", "platform", "server"})

func init() { metrics.Registry.MustRegister(brokerStorageRatio) }

// jetStreamObservation is what the broker servers' monitors said.
type jetStreamObservation struct {
	// asked is false when no server was asked (no ready replica).
	asked   bool
	servers []*brokermon.Server
	// unreachable are "server: error" for each monitor that did not answer.
	unreachable []string
	cluster     *brokermon.Cluster
}

// observeJetStream asks the monitor of each broker replica. A monitor that
// does not answer is noted, never an error: the pods' readiness already
// says whether the broker runs, and the reconcile must go on.
func (r *PlatformReconciler) observeJetStream(ctx context.Context, p *v1alpha1.Platform, broker v1alpha1.BrokerStatus) *jetStreamObservation {
	js := &jetStreamObservation{}
	brokerStorageRatio.DeletePartialMatch(prometheus.Labels{"namespace": p.Namespace, "platform": p.Name})
	if broker.ReadyReplicas == 0 {
		return js
	}
	js.asked = true
	for i := range broker.Replicas {
		s, err := r.BrokerMonitor.Server(ctx, render.BrokerMonitorURL(p, i))
		if err != nil {
			js.unreachable = append(js.unreachable, fmt.Sprintf("%s-%d: %v", render.BrokerName(p), i, err))
			continue
		}
		js.servers = append(js.servers, s)
		if used, limit := s.StorageUsed(); limit > 0 {
			brokerStorageRatio.WithLabelValues(p.Namespace, p.Name, s.Name).Set(float64(used) / float64(limit))
		}
	}
	js.cluster = brokermon.ClusterOf(js.servers)
	return js
}

// forgetBroker drops the metric series of a Platform that is gone.
func forgetBroker(key metav1.Object) {
	brokerStorageRatio.DeletePartialMatch(prometheus.Labels{"namespace": key.GetNamespace(), "platform": key.GetName()})
}

func setBrokerStorageCondition(p *v1alpha1.Platform, o *reconcileOutcome) {
	if o.observed == nil {
		return
	}
	js := o.observed.jetstream
	switch {
	case js == nil:
		// No monitor to ask (a reconciler outside the operator).
		meta.RemoveStatusCondition(&p.Status.Conditions, ConditionBrokerStorage)
		return
	case !js.asked:
		setUnknownCondition(p, ConditionBrokerStorage, reasonBrokerNotReady, "no broker replica is ready to ask how full its JetStream store is")
		return
	case len(js.servers) == 0:
		setUnknownCondition(p, ConditionBrokerStorage, reasonMonitorUnreachable, fmt.Sprintf(
			"no broker monitor answered (%s): the operator reads port 8222 of each broker pod; check that NetworkPolicy %s admits the operator's namespace",
			strings.Join(js.unreachable, "; "), render.BrokerName(p)))
		return
	}
	var fullest *brokermon.Server
	var ratio float64
	for _, s := range js.servers {
		used, limit := s.StorageUsed()
		if limit <= 0 {
			continue
		}
		if r := float64(used) / float64(limit); fullest == nil || r > ratio {
			fullest, ratio = s, r
		}
	}
	if fullest == nil {
		setUnknownCondition(p, ConditionBrokerStorage, reasonMonitorUnreachable, "the broker servers report no JetStream store limit")
		return
	}
	used, limit := fullest.StorageUsed()
	usage := fmt.Sprintf("%s uses %.0f%% of its JetStream store (%s of %s)", fullest.Name, ratio*100, byteSize(int64(used)), byteSize(limit))
	if len(js.unreachable) > 0 {
		usage += fmt.Sprintf("; not asked: %s", strings.Join(js.unreachable, "; "))
	}
	if ratio > storageWarnRatio {
		setCondition(p, ConditionBrokerStorage, false, reasonStorageNearlyFull, usage+
			": raise spec.broker.jetstream.size or lower the streams' limits; when it is full every JetStream write fails, orders included")
		return
	}
	setCondition(p, ConditionBrokerStorage, true, reasonStorageAvailable, "the fullest server: "+usage)
}

func setUnknownCondition(p *v1alpha1.Platform, typ, reason, message string) {
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: typ, Status: metav1.ConditionUnknown, Reason: reason, Message: message, ObservedGeneration: p.Generation,
	})
}

// clusterReport says what BrokerReady adds about the JetStream meta
// cluster of a broker whose replicas are ready: ok is false when it has no
// meta leader, which makes every JetStream request fail.
func clusterReport(p *v1alpha1.Platform, o *reconcileOutcome) (detail string, ok bool) {
	js := o.observed.jetstream
	if js == nil || js.cluster == nil {
		return "", true
	}
	c := js.cluster
	if c.Leader == "" {
		return fmt.Sprintf("JetStream cluster %s has no meta leader, so every JetStream request fails: a quorum (%d of %d) must reach each other on port 6222; see kubectl logs %s-0",
			c.Name, c.Size/2+1, c.Size, render.BrokerName(p)), false
	}
	switch {
	case c.Current < 0:
		return fmt.Sprintf("JetStream cluster %s: meta leader %s (its monitor did not answer, so which peers are current is unknown)", c.Name, c.Leader), true
	case len(c.Behind) > 0:
		return fmt.Sprintf("JetStream cluster %s: meta leader %s, %d/%d peers current; behind: %s", c.Name, c.Leader, c.Current, c.Size, strings.Join(c.Behind, ", ")), true
	default:
		return fmt.Sprintf("JetStream cluster %s: meta leader %s, %d/%d peers current", c.Name, c.Leader, c.Current, c.Size), true
	}
}

// announceStorage records a Warning Event when BrokerStorage turns False.
func (r *PlatformReconciler) announceStorage(before, p *v1alpha1.Platform) {
	now := meta.FindStatusCondition(p.Status.Conditions, ConditionBrokerStorage)
	if now == nil || now.Reason != reasonStorageNearlyFull {
		return
	}
	if was := meta.FindStatusCondition(before.Status.Conditions, ConditionBrokerStorage); was != nil && was.Reason == reasonStorageNearlyFull {
		return
	}
	r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, "BrokerStorageNearlyFull", "Observe", "%s", now.Message)
}

func byteSize(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }
