package render

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// FieldManager is the server-side apply field manager of the operator, and
// the value of the managed-by label on every object it applies.
const FieldManager = "switchboard-operator"

// Standard label keys (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
)

// AppName is the value of the name and part-of labels.
const AppName = "switchboard"

// Components that are not catalog services.
const (
	ComponentBroker = "broker"
	// ComponentAuth labels the <p>-auth Secret.
	ComponentAuth = "auth"
)

// Pod template annotations that roll pods when something they read at start
// changes without the template itself changing.
const (
	// AnnotationConfigHash is a hash of the broker's nats.conf.
	AnnotationConfigHash = "platform.switchboard.dev/config-hash"
	// AnnotationAuthHash is a hash of the broker credentials the pods read
	// (a service's own user; the broker's route credentials from <p>-auth):
	// env vars are read once, so new credentials need new pods.
	AnnotationAuthHash = "platform.switchboard.dev/auth-hash"
)

// ClusterDomain is the DNS suffix of in-cluster Service names.
const ClusterDomain = "cluster.local"

// Broker ports.
const (
	ClientPort  = 4222
	ClusterPort = 6222
	MonitorPort = 8222
	// MetricsPort is the broker-metrics sidecar's /metrics, container port
	// PortNameMetrics.
	MetricsPort = 7777
)

// PortNameMonitor names the broker pods' monitor port (MonitorPort).
const PortNameMonitor = "monitor"

// PortNameMetrics names the broker pods' metrics port, which PodMonitors
// and spec.networkPolicy.metricsFrom refer to.
const PortNameMetrics = "metrics"

// ServicePort is the port of every service's Service; it targets the
// container port named PortNameHTTP (catalog.HTTPPort).
const (
	ServicePort  = 80
	PortNameHTTP = "http"
)

// PortNameGRPC names the internal gRPC port (catalog.GRPCPort) of the
// services that serve gRPC, on their containers and their Services (same
// number on both).
const PortNameGRPC = "grpc"

// Labels returns the labels of every object (and pod) of component in p.
func Labels(p *v1alpha1.Platform, component string) map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelInstance:  p.Name,
		LabelComponent: component,
		LabelPartOf:    AppName,
		LabelManagedBy: FieldManager,
	}
}

// SelectorLabels returns the labels that select component's pods. They are
// a subset of Labels that never changes, because Deployment and StatefulSet
// selectors are immutable.
func SelectorLabels(p *v1alpha1.Platform, component string) map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelInstance:  p.Name,
		LabelComponent: component,
	}
}

// PlatformSelector matches every object the operator applies for p (in p's
// namespace: callers must list within it, since instance is only the name).
func PlatformSelector(p *v1alpha1.Platform) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelInstance: p.Name, LabelManagedBy: FieldManager})
}

// ManagedBySelector matches every object the operator applies, for any Platform.
func ManagedBySelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: FieldManager})
}

// ObjectName is the name of service's Deployment, Service, HPA and PDB.
func ObjectName(p *v1alpha1.Platform, service string) string { return p.Name + "-" + service }

// OpsServiceName is the headless Service of service's ops port, through
// which the gateway's console reads every instance of every service, its
// own included.
func OpsServiceName(p *v1alpha1.Platform, service string) string {
	return ObjectName(p, service) + "-ops"
}

// BrokerName is the name of the broker's StatefulSet, client Service and PDB.
func BrokerName(p *v1alpha1.Platform) string { return p.Name + "-nats" }

// BrokerHeadlessName is the governing Service of the broker's StatefulSet.
func BrokerHeadlessName(p *v1alpha1.Platform) string { return p.Name + "-nats-headless" }

// BrokerConfigName is the ConfigMap holding nats.conf.
func BrokerConfigName(p *v1alpha1.Platform) string { return p.Name + "-nats-config" }

// AuthSecretName is the Secret holding the generated credentials.
func AuthSecretName(p *v1alpha1.Platform) string { return p.Name + "-auth" }

// BrokerURL is the URL clients connect to.
func BrokerURL(p *v1alpha1.Platform) string {
	return fmt.Sprintf("nats://%s.%s.svc.%s:%d", BrokerName(p), p.Namespace, ClusterDomain, ClientPort)
}

// ServiceURL is the in-cluster base URL of service.
func ServiceURL(p *v1alpha1.Platform, service string) string {
	return fmt.Sprintf("http://%s.%s.svc.%s", ObjectName(p, service), p.Namespace, ClusterDomain)
}

// ServiceAPIURL is the base URL of a service's REST API as the gateway
// reaches it: https, since the API port speaks mutual TLS and admits the
// gateway's certificate alone, on the Service's http port.
func ServiceAPIURL(p *v1alpha1.Platform, service string) string {
	return fmt.Sprintf("https://%s.%s.svc.%s:%d", ObjectName(p, service), p.Namespace, ClusterDomain, ServicePort)
}

// ServiceGRPCTarget is the gRPC target of a service's internal API, its
// Service's grpc port, for the services that call it. The client proves
// the server's identity, not its address.
func ServiceGRPCTarget(p *v1alpha1.Platform, service string) string {
	return fmt.Sprintf("dns:///%s.%s.svc.%s:%d", ObjectName(p, service), p.Namespace, ClusterDomain, catalog.GRPCPort)
}

// GatewayURL is the in-cluster base URL of the API gateway.
func GatewayURL(p *v1alpha1.Platform) string { return ServiceURL(p, catalog.Gateway) }

// BrokerMonitorServiceURL is the broker's HTTP monitor through its client
// Service, which the gateway's console reads (/jsz): any server answers
// for the streams it holds, and with replicated streams every one holds
// them all.
func BrokerMonitorServiceURL(p *v1alpha1.Platform) string {
	return fmt.Sprintf("http://%s.%s.svc.%s:%d", BrokerName(p), p.Namespace, ClusterDomain, MonitorPort)
}

// BrokerMonitorURL is the base URL of broker pod i's HTTP monitor, which
// the operator reads for status.
func BrokerMonitorURL(p *v1alpha1.Platform, i int32) string {
	return fmt.Sprintf("http://%s:%d", brokerPodHost(p, i), MonitorPort)
}

// OperatorPodLabels are labels the operator's pods carry, in the chart and
// in config/manager alike: the broker's NetworkPolicy admits pods with them,
// in Options.OperatorNamespace, to its monitor.
var OperatorPodLabels = map[string]string{LabelName: AppName, LabelComponent: "operator"}

// brokerPodHost is the stable DNS name of broker pod i.
func brokerPodHost(p *v1alpha1.Platform, i int32) string {
	return fmt.Sprintf("%s-%d.%s.%s.svc.%s", BrokerName(p), i, BrokerHeadlessName(p), p.Namespace, ClusterDomain)
}
