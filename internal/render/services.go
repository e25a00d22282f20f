package render

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/services/catalog"
)

// serviceUID is the distroless "nonroot" user the services image runs as.
const serviceUID = 65532

func servicesImage(p *v1alpha1.Platform, opts Options) string {
	if p.Spec.Image != "" {
		return p.Spec.Image
	}
	return opts.ServicesImage
}

// PortNameOps names every service's ops port (catalog.OpsPort): /healthz,
// /readyz and /metrics, apart from the API on PortNameHTTP. Probes and
// scrapers use it; the gateway asks the upstreams' readiness on it.
const PortNameOps = "ops"

// ServiceOpsURL is the in-cluster base URL of a service's ops port,
// through its headless ops Service (OpsServiceName): its name resolves to
// every pod's address, so the gateway's console reads each instance's
// readiness, metrics and trace buffer, where a Service's virtual IP would
// answer for one pod picked at random.
func ServiceOpsURL(p *v1alpha1.Platform, service string) string {
	return fmt.Sprintf("http://%s.%s.svc.%s:%d", OpsServiceName(p, service), p.Namespace, ClusterDomain, catalog.OpsPort)
}

// serviceEnv wires a service to its identity, the broker (with its own
// user, if it uses the broker at all), its upstreams and the token keys
// its catalog row asks for. Credentials and private keys come only through
// secretKeyRef or the mounted tls Secret.
//
// The gateway routes only to enabled services, over https (their API
// ports speak mutual TLS): a disabled service is an expected 404 there. It
// gets each one's ops URL too, for its readiness, and the proxies whose
// X-Forwarded-For it may believe. Any other service gets the gRPC target
// of every catalog upstream (<UPSTREAM>_GRPC), enabled or not: order
// without product cannot work, and a target that does not resolve makes
// that fail loudly in its calls and logs, rather than quietly skipping a
// step of the saga.
func serviceEnv(p *v1alpha1.Platform, svc ServicePlan, enabled map[string]bool) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: catalog.EnvHTTPAddr, Value: ":" + itoa(svc.Port)},
		{Name: catalog.EnvOpsAddr, Value: ":" + itoa(catalog.OpsPort)},
	}
	env = append(env, identityEnv(svc.Service)...)
	env = append(env, brokerEnvOf(p, svc.Service)...)
	env = append(env, tokenEnv(p, svc.Service)...)
	gateway := svc.Name == catalog.Gateway
	for _, up := range svc.Upstreams {
		switch {
		case !gateway:
			// Services call each other's internal gRPC API.
			env = append(env, corev1.EnvVar{Name: catalog.EnvGRPC(up), Value: ServiceGRPCTarget(p, up)})
		case enabled[up]:
			env = append(env, corev1.EnvVar{Name: catalog.EnvURL(up), Value: ServiceAPIURL(p, up)},
				corev1.EnvVar{Name: catalog.EnvOpsURL(up), Value: ServiceOpsURL(p, up)})
		}
	}
	if gateway {
		// The console reads the broker's monitor; the gateway has no
		// broker credentials. It reads every gateway pod's ops port too:
		// the request that began a trace may have come through another.
		env = append(env, corev1.EnvVar{Name: catalog.EnvBrokerMonitorURL, Value: BrokerMonitorServiceURL(p)},
			corev1.EnvVar{Name: catalog.EnvOpsURL(catalog.Gateway), Value: ServiceOpsURL(p, catalog.Gateway)})
	}
	if cidrs := p.Spec.Gateway.TrustedProxyCIDRs; gateway && len(cidrs) > 0 {
		env = append(env, corev1.EnvVar{Name: catalog.EnvTrustedProxyCIDRs, Value: strings.Join(cidrs, ",")})
	}
	env = append(env, observabilityEnv(p)...)
	return append(env, lifecycleEnv(p, svc.Service, enabled)...)
}

// observabilityEnv points every service's tracing at the collector and
// sets its sampling, OpenTelemetry's standard variables, when
// spec.observability says so. Without it a service keeps every trace, in
// its own memory only.
func observabilityEnv(p *v1alpha1.Platform) []corev1.EnvVar {
	o := p.Spec.Observability
	var env []corev1.EnvVar
	if o.OTLPEndpoint != "" {
		env = append(env, corev1.EnvVar{Name: catalog.EnvOTLPEndpoint, Value: o.OTLPEndpoint})
	}
	if o.SamplingRatio != "" {
		// validate parsed it already.
		r, _ := SamplingRatio(p)
		env = append(env, corev1.EnvVar{Name: catalog.EnvTracesSampler, Value: "parentbased_traceidratio"},
			corev1.EnvVar{Name: catalog.EnvTracesSamplerArg, Value: strconv.FormatFloat(r, 'f', -1, 64)})
	}
	return env
}

// SamplingRatio parses spec.observability.samplingRatio: a decimal from 0
// to 1; 1 when unset.
func SamplingRatio(p *v1alpha1.Platform) (float64, error) {
	v := p.Spec.Observability.SamplingRatio
	if v == "" {
		return 1, nil
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r != r || r < 0 || r > 1 || !samplingRatioPattern.MatchString(v) {
		return 0, fmt.Errorf("spec.observability.samplingRatio: %q is not a ratio from 0 to 1 with at most 6 decimals, such as \"0.01\" (one trace in a hundred) or \"1\" (every trace)", v)
	}
	return r, nil
}

// The patterns of the CRD's markers on spec.observability.
var (
	samplingRatioPattern = regexp.MustCompile(`^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$`)
	otlpEndpointPattern  = regexp.MustCompile(`^https?://[^/?#@\s]+:[0-9]{1,5}/?$`)
)

// OTLPPort is the port of spec.observability.otlpEndpoint, which services'
// egress admits; 0 when unset.
func OTLPPort(p *v1alpha1.Platform) (int32, error) {
	v := p.Spec.Observability.OTLPEndpoint
	if v == "" {
		return 0, nil
	}
	u, err := url.Parse(v)
	if err == nil && otlpEndpointPattern.MatchString(v) {
		if n, perr := strconv.ParseUint(u.Port(), 10, 16); perr == nil && n > 0 {
			return int32(n), nil
		}
	}
	return 0, fmt.Errorf("spec.observability.otlpEndpoint: %q is not a collector URL with its port, such as http://jaeger-collector.observability:4317", v)
}

// lifecycleEnv: streams and buckets follow the broker (their replicas and
// byte limits derive from its replicas and store, so whichever service
// owns one asks JetStream for the same config), each service learns which
// it owns from the platform's broker services, as its permissions do, and
// every service's drain matches its preStop sleep.
func lifecycleEnv(p *v1alpha1.Platform, svc catalog.Service, enabled map[string]bool) []corev1.EnvVar {
	var env []corev1.EnvVar
	if svc.UsesBroker() {
		var running []catalog.Service
		for _, s := range catalog.All() {
			if enabled[s.Name] {
				running = append(running, s)
			}
		}
		env = append(env,
			corev1.EnvVar{Name: catalog.EnvBrokerReplicas, Value: itoa(BrokerReplicas(p))},
			corev1.EnvVar{Name: catalog.EnvBrokerStoreBytes, Value: strconv.FormatInt(brokerStoreBytes(p), 10)},
			corev1.EnvVar{Name: catalog.EnvBrokerServices, Value: strings.Join(catalog.BrokerServices(running), ",")})
	}
	return append(env, corev1.EnvVar{Name: catalog.EnvShutdownDrain, Value: catalog.DefaultShutdownDrain.String()})
}

func serviceDeployment(p *v1alpha1.Platform, svc ServicePlan, opts Options, keys tokenKeySet, enabled map[string]bool) *appsv1.Deployment {
	annotations := tokenAnnotations(svc.Service, keys, opts.Admin)
	if svc.UsesBroker() {
		annotations[AnnotationAuthHash] = opts.BrokerUsers[svc.Name].hash()
	}
	ports := []corev1.ContainerPort{
		{Name: PortNameHTTP, ContainerPort: svc.Port, Protocol: corev1.ProtocolTCP},
		{Name: PortNameOps, ContainerPort: catalog.OpsPort, Protocol: corev1.ProtocolTCP},
	}
	if svc.ServesGRPC() {
		ports = append(ports, corev1.ContainerPort{Name: PortNameGRPC, ContainerPort: catalog.GRPCPort, Protocol: corev1.ProtocolTCP})
	}
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta(p, ObjectName(p, svc.Name), svc.Name),
		Spec: appsv1.DeploymentSpec{
			// Nil when autoscaled: the HPA owns the count, and applying
			// one here would fight it on every reconcile.
			Replicas:             svc.Replicas,
			RevisionHistoryLimit: ptr.To[int32](3),
			Strategy:             appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
			Selector:             &metav1.LabelSelector{MatchLabels: SelectorLabels(p, svc.Name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      Labels(p, svc.Name),
					Annotations: annotations,
				},
				Spec: corev1.PodSpec{
					// Services never talk to the Kubernetes API.
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext:              podSecurityContext(serviceUID),
					// Room for the preStop sleep and the service's own
					// ordered stop (catalog.TerminationGracePeriod).
					TerminationGracePeriodSeconds: ptr.To(int64(catalog.TerminationGracePeriod(catalog.DefaultShutdownDrain).Seconds())),
					Containers: []corev1.Container{{
						Name:    svc.Name,
						Image:   servicesImage(p, opts),
						Command: []string{"/switchboard"},
						Args:    []string{"serve", svc.Name},
						Ports:   ports,
						Env:     serviceEnv(p, svc, enabled),
						// Readiness checks only the service's own
						// dependencies, so one failing service never
						// takes its callers out of their Services.
						// 3 s timeouts: on the one-node cluster, 13 pods
						// starting on two busy cores missed 1 s readiness
						// answers though nothing was wrong.
						StartupProbe:    httpProbe("/healthz", PortNameOps, 2, 3, 30),
						LivenessProbe:   httpProbe("/healthz", PortNameOps, 10, 3, 3),
						ReadinessProbe:  httpProbe("/readyz", PortNameOps, 5, 3, 3),
						Resources:       svc.Resources,
						VolumeMounts:    []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}, tlsVolumeMount()},
						SecurityContext: containerSecurityContext(),
						// Endpoints are removed while this sleeps, so no
						// caller picks the pod once SIGTERM arrives; the
						// service then drains SHUTDOWN_DRAIN more itself.
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
							Sleep: &corev1.SleepAction{Seconds: int64(catalog.DefaultShutdownDrain.Seconds())},
						}},
					}},
					Volumes: []corev1.Volume{{
						Name: "tmp",
						VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
							SizeLimit: ptr.To(resource.MustParse("64Mi")),
						}},
					}, tlsPodVolume(p, svc.Name)},
				},
			},
		},
	}
}

func serviceService(p *v1alpha1.Platform, svc ServicePlan) *corev1.Service {
	port := corev1.ServicePort{
		Name: PortNameHTTP, Port: ServicePort, TargetPort: intstr.FromString(PortNameHTTP), Protocol: corev1.ProtocolTCP,
	}

	typ := corev1.ServiceTypeClusterIP
	if svc.Name == catalog.Gateway {
		if t := p.Spec.Gateway.ServiceType; t != "" {
			typ = t
		}
		if np := p.Spec.Gateway.NodePort; np != nil && typ != corev1.ServiceTypeClusterIP {
			port.NodePort = *np
		}
	}
	// No ops port: its readers want every instance, through the headless
	// opsService; a port here would only add an address that answers for
	// one pod at random.
	ports := []corev1.ServicePort{port}
	if svc.ServesGRPC() {
		ports = append(ports, corev1.ServicePort{
			Name: PortNameGRPC, Port: catalog.GRPCPort, TargetPort: intstr.FromString(PortNameGRPC), Protocol: corev1.ProtocolTCP,
		})
	}
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(p, ObjectName(p, svc.Name), svc.Name),
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: SelectorLabels(p, svc.Name),
			Ports:    ports,
		},
	}
}

// opsService is the headless Service of a service's ops port, which the
// gateway's console reads every instance through (ServiceOpsURL), the
// gateway's own pods included. It lists pods
// that are not ready too: the console counts them as instances that are
// not ready, and their trace buffers hold spans of what they did before,
// often the very requests that failed. The gateway's readiness of a
// service is therefore "any instance ready", asked of each address, not
// of whichever one DNS lists first. It has no cluster IP and no node
// port, so it exposes nothing beyond the pods' own addresses, which the
// NetworkPolicies guard.
func opsService(p *v1alpha1.Platform, svc ServicePlan) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(p, OpsServiceName(p, svc.Name), svc.Name),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 SelectorLabels(p, svc.Name),
			Ports: []corev1.ServicePort{{
				Name: PortNameOps, Port: catalog.OpsPort, TargetPort: intstr.FromString(PortNameOps), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// utilizationMetrics are the HPA's resource targets: CPU always, memory when
// set. The HPA follows whichever metric asks for more replicas.
func utilizationMetrics(as *catalog.Autoscaling) []autoscalingv2.MetricSpec {
	metric := func(name corev1.ResourceName, target int32) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   name,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(target)},
			},
		}
	}
	metrics := []autoscalingv2.MetricSpec{metric(corev1.ResourceCPU, as.TargetCPUUtilizationPercentage)}
	if as.TargetMemoryUtilizationPercentage > 0 {
		metrics = append(metrics, metric(corev1.ResourceMemory, as.TargetMemoryUtilizationPercentage))
	}
	return metrics
}

func serviceHPA(p *v1alpha1.Platform, svc ServicePlan) *autoscalingv2.HorizontalPodAutoscaler {
	as := svc.Autoscaling
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   typeMeta("autoscaling/v2", "HorizontalPodAutoscaler"),
		ObjectMeta: objectMeta(p, ObjectName(p, svc.Name), svc.Name),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: "apps/v1", Kind: "Deployment", Name: ObjectName(p, svc.Name),
			},
			MinReplicas: ptr.To(as.MinReplicas),
			MaxReplicas: as.MaxReplicas,
			Metrics:     utilizationMetrics(as),
		},
	}
}
