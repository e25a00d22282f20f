package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload names a group of services enabled together.
// +kubebuilder:validation:Enum=commerce;streaming
type Workload string

const (
	WorkloadCommerce  Workload = "commerce"
	WorkloadStreaming Workload = "streaming"
)

// The services-key rule below must list exactly the catalog's services per
// workload (services/catalog). TestCRDServiceRuleMatchesCatalog keeps them in sync.

// PlatformSpec is the desired platform: which workloads run, and how.
// +kubebuilder:validation:XValidation:rule="!has(self.services) || self.services.all(k, (k == 'gateway') || ('commerce' in self.workloads && k in ['user', 'product', 'order', 'payment', 'notification']) || ('streaming' in self.workloads && k in ['account', 'content', 'playback', 'analytics', 'recommendation']))",message="every key of spec.services must be a service of an enabled workload (commerce: gateway, user, product, order, payment, notification; streaming: gateway, account, content, playback, analytics, recommendation)",fieldPath=".services",reason=FieldValueInvalid
type PlatformSpec struct {
	// Workloads to run. At least one; each at most once.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +listType=set
	Workloads []Workload `json:"workloads"`

	// Image of the services (one image runs every service). Defaults to the
	// operator's --services-image, so operator and services move in lockstep.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// Broker is the NATS JetStream broker every service talks to.
	// +optional
	// +kubebuilder:default={}
	Broker BrokerSpec `json:"broker,omitempty"`

	// Gateway configures how the API gateway is exposed.
	// +optional
	// +kubebuilder:default={}
	Gateway GatewaySpec `json:"gateway,omitempty"`

	// NetworkPolicy restricts traffic between the platform's pods.
	// +optional
	// +kubebuilder:default={}
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// Defaults apply to every service unless its entry in services overrides them.
	// +optional
	Defaults ServiceDefaults `json:"defaults,omitempty"`

	// Services holds per-service overrides, keyed by service name. Keys must
	// be services of the enabled workloads.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Services map[string]ServiceSpec `json:"services,omitempty"`
}

// BrokerSpec configures the NATS broker.
type BrokerSpec struct {
	// Replicas of the NATS StatefulSet: 1, or 3 or 5 for a quorum.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:XValidation:rule="self in [1, 3, 5]",message="broker replicas must be 1, 3 or 5 (a JetStream cluster needs an odd quorum)"
	Replicas int32 `json:"replicas,omitempty"`

	// Image of the NATS server. Defaults to the official image of the
	// nats-server version Switchboard embeds.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// JetStream storage.
	// +optional
	// +kubebuilder:default={}
	JetStream JetStreamSpec `json:"jetstream,omitempty"`

	// Resources of each broker container. Defaults to requests of 100m CPU
	// and 128Mi memory and no limits. With memory storage, request at least
	// jetstream.size of memory.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Metrics exports the broker's figures to Prometheus.
	// +optional
	// +kubebuilder:default={}
	Metrics BrokerMetricsSpec `json:"metrics,omitempty"`
}

// BrokerMetricsSpec configures the broker's metrics sidecar.
type BrokerMetricsSpec struct {
	// Enabled adds a container "metrics" to each broker pod: it runs
	// `switchboard broker-metrics` from the services image and serves the
	// server's monitor figures (switchboard_nats_*) on port metrics (7777)
	// at /metrics. It runs the services image, so a new services image
	// also rolls the broker pods, one at a time; so does switching this.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
}

// JetStreamStorage is where JetStream keeps streams and buckets.
// +kubebuilder:validation:Enum=file;memory
type JetStreamStorage string

const (
	StorageFile   JetStreamStorage = "file"
	StorageMemory JetStreamStorage = "memory"
)

// JetStreamSpec configures JetStream storage.
type JetStreamSpec struct {
	// Storage is file (on a PersistentVolumeClaim) or memory.
	// +optional
	// +kubebuilder:default=file
	Storage JetStreamStorage `json:"storage,omitempty"`

	// Size of each broker replica's volume, and JetStream's storage limit.
	// +optional
	// +kubebuilder:default="1Gi"
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the volume claim; empty uses the cluster default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// GatewaySpec configures the API gateway's Service.
// +kubebuilder:validation:XValidation:rule="!has(self.nodePort) || self.serviceType != 'ClusterIP'",message="gateway.nodePort needs serviceType NodePort or LoadBalancer"
type GatewaySpec struct {
	// ServiceType of the gateway's Service.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	ServiceType corev1.ServiceType `json:"serviceType,omitempty"`

	// NodePort to pin when serviceType is NodePort or LoadBalancer; unset lets
	// Kubernetes choose.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	NodePort *int32 `json:"nodePort,omitempty"`
}

// NetworkPolicySpec turns the platform's NetworkPolicies on or off.
type NetworkPolicySpec struct {
	// Enabled renders NetworkPolicies: pods accept traffic only from the
	// platform's own pods (and metricsFrom), except the gateway, which
	// accepts it from anywhere.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// MetricsFrom are the peers allowed to scrape metrics, such as
	// Prometheus' namespace: they are admitted to the internal services'
	// port http, where /metrics is served, and to the broker's port
	// metrics. Port http also serves each service's API, so these peers
	// can call the internal services directly, as the gateway does. The
	// gateway already admits anyone. Ignored when enabled is false.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(p, has(p.ipBlock) || has(p.podSelector) || has(p.namespaceSelector))",message="each metricsFrom peer needs an ipBlock, a podSelector or a namespaceSelector",reason=FieldValueRequired
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || !(has(p.podSelector) || has(p.namespaceSelector)))",message="a metricsFrom peer with an ipBlock may not also have a podSelector or namespaceSelector",reason=FieldValueForbidden
	MetricsFrom []networkingv1.NetworkPolicyPeer `json:"metricsFrom,omitempty"`
}

// ServiceDefaults apply to every service.
type ServiceDefaults struct {
	// Resources of each service container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// ServiceSpec overrides one service.
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling) && (!has(self.autoscaling.enabled) || self.autoscaling.enabled))",message="set either replicas or autoscaling, not both: an autoscaled service's replicas belong to its HorizontalPodAutoscaler"
type ServiceSpec struct {
	// Enabled runs the service; false removes it and its children.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Replicas of a service that is not autoscaled.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling replaces replicas with a HorizontalPodAutoscaler.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Resources override spec.defaults.resources for this service.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// AutoscalingSpec shapes a service's HorizontalPodAutoscaler.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must not be greater than autoscaling.maxReplicas"
type AutoscalingSpec struct {
	// Enabled turns autoscaling on (the default when this block is present)
	// or off for a service the catalog autoscales by default.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// MinReplicas defaults to the catalog's value, or 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas defaults to the catalog's value, or 5.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// TargetCPUUtilizationPercentage defaults to the catalog's value, or 70.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`
}

// PlatformStatus is what the operator observed.
type PlatformStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, BrokerReady, ServicesReady, Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Broker is the observed state of the NATS StatefulSet.
	// +optional
	Broker BrokerStatus `json:"broker,omitempty"`

	// Services is the observed state of each enabled service, in catalog order.
	// +optional
	// +listType=map
	// +listMapKey=name
	Services []ServiceStatus `json:"services,omitempty"`

	// ServicesReady counts ready services out of enabled ones, as "ready/total".
	// +optional
	ServicesReady string `json:"servicesReady,omitempty"`

	// GatewayURL is the in-cluster URL of the API gateway.
	// +optional
	GatewayURL string `json:"gatewayURL,omitempty"`
}

// BrokerStatus is the observed state of the broker.
type BrokerStatus struct {
	// URL clients connect to.
	// +optional
	URL string `json:"url,omitempty"`
	// Replicas desired.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas observed.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Ready is "readyReplicas/replicas", for kubectl get.
	// +optional
	Ready string `json:"ready,omitempty"`
}

// ServiceStatus is the observed state of one service.
type ServiceStatus struct {
	// Name of the service.
	Name string `json:"name"`
	// Ready is true when every desired replica is updated and ready.
	Ready bool `json:"ready"`
	// Replicas desired (by spec or by the HPA).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// ReadyReplicas observed.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Endpoint is the service's in-cluster URL.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
}

// Platform is a Switchboard platform: a NATS JetStream broker and the
// microservices of the chosen workloads, wired together.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pf,categories=switchboard
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 47 && !self.metadata.name.contains('.')",message="a Platform name must be at most 47 characters without dots: its children (<name>-nats, <name>-recommendation) must be valid DNS labels"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Services",type=string,JSONPath=`.status.servicesReady`
// +kubebuilder:printcolumn:name="Broker",type=string,JSONPath=`.status.broker.ready`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Platform struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PlatformSpec   `json:"spec,omitempty"`
	Status PlatformStatus `json:"status,omitempty"`
}

// PlatformList is a list of Platforms.
// +kubebuilder:object:root=true
type PlatformList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Platform `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Platform{}, &PlatformList{})
}
