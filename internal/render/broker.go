package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
)

// DefaultBrokerImage is the official image of the nats-server version the
// project embeds (go.mod); a test keeps the two in step.
const DefaultBrokerImage = "nats:2.15.2"

// Broker pod layout.
const (
	brokerContainer  = "nats"
	metricsContainer = "metrics"
	brokerConfigKey  = "nats.conf"
	brokerConfigDir  = "/etc/nats-config"
	brokerDataDir    = "/data"
	brokerStoreDir   = brokerDataDir + "/jetstream"
	brokerDataVolume = "data"
	brokerUID        = 1000
)

// annotationDefaultContainer names the container kubectl logs and exec use
// by default.
const annotationDefaultContainer = "kubectl.kubernetes.io/default-container"

// Env vars of the broker container. nats.conf refers to them as $NAME.
const (
	envPodName            = "POD_NAME"
	envNATSUser           = "NATS_USER"
	envNATSPassword       = "NATS_PASSWORD"
	envNATSSystemUser     = "NATS_SYSTEM_USER"
	envNATSSystemPassword = "NATS_SYSTEM_PASSWORD"
	envRoutePrefix        = "NATS_ROUTE_"
)

// defaultBrokerSize is the JetStream volume and limit when spec.broker.jetstream.size is unset.
var defaultBrokerSize = resource.MustParse("1Gi")

// minBrokerSize is the least spec.broker.jetstream.size, as the CRD's CEL
// rule says: below it the smallest shares of the store hold next to nothing.
var minBrokerSize = resource.MustParse("64Mi")

// BrokerReplicas is the size of p's broker StatefulSet: spec.broker.replicas,
// or 1 when unset (a Platform read from a file has no API server defaults).
func BrokerReplicas(p *v1alpha1.Platform) int32 {
	if p.Spec.Broker.Replicas == 0 {
		return 1
	}
	return p.Spec.Broker.Replicas
}

// brokerImage is spec.broker.image, else the operator's default, else the
// official image of the embedded nats-server. The operator's default lets a
// cluster that cannot pull from Docker Hub (an air-gapped one, or the local
// cluster of hack/cluster, which builds its own NATS image) run a Platform
// copied from the docs unchanged.
func brokerImage(p *v1alpha1.Platform, opts Options) string {
	switch {
	case p.Spec.Broker.Image != "":
		return p.Spec.Broker.Image
	case opts.BrokerImage != "":
		return opts.BrokerImage
	default:
		return DefaultBrokerImage
	}
}

func brokerSize(p *v1alpha1.Platform) resource.Quantity {
	if s := p.Spec.Broker.JetStream.Size; s != nil {
		return s.DeepCopy()
	}
	return defaultBrokerSize.DeepCopy()
}

// brokerStoreBytes is JetStream's store limit on each broker server, in
// bytes: what every stream's and bucket's byte limit is a share of.
func brokerStoreBytes(p *v1alpha1.Platform) int64 {
	size := brokerSize(p)
	return size.Value()
}

func brokerMetricsEnabled(p *v1alpha1.Platform) bool {
	return ptr.Deref(p.Spec.Broker.Metrics.Enabled, true)
}

func memoryStorage(p *v1alpha1.Platform) bool {
	return p.Spec.Broker.JetStream.Storage == v1alpha1.StorageMemory
}

func authSecret(p *v1alpha1.Platform, c Credentials) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(p, AuthSecretName(p), ComponentAuth),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			SecretKeyNATSUser:           []byte(c.NATSUser),
			SecretKeyNATSPassword:       []byte(c.NATSPassword),
			SecretKeyNATSSystemUser:     []byte(c.SystemUser),
			SecretKeyNATSSystemPassword: []byte(c.SystemPassword),
		},
	}
}

// natsConfig renders nats.conf. It holds no password: the services'
// users carry bcrypt hashes (see BrokerUserKeeper), and the cluster's
// route credentials are substituted by the server as $NATS_USER and
// $NATS_PASSWORD from its environment, which the StatefulSet fills from
// the <p>-auth Secret.
//
// Each service that uses the broker has a user of its own, allowed exactly
// what PermissionsFor derives from its catalog row; the gateway has none.
// The route credentials are also the broker's administrative user, with
// no limits: for people, through a port-forward (switchboard dlq, the nats
// CLI). No pod but the broker's reads them, and reading their Secret takes
// what reading any service's Secret takes.
//
// The server name is passed as --name $(POD_NAME) rather than written here
// as server_name: $POD_NAME, because nats-server parses a substituted value
// as a config token, and a pod name such as "1234-nats-0" lexes as a
// malformed date.
//
// Routes need the credentials inside their URLs (a route sends only its
// URL's user info), so each is an env var NATS_ROUTE_<i> that the kubelet
// assembles from the secret-backed variables; see brokerEnv.
func natsConfig(p *v1alpha1.Platform, plans []ServicePlan, users BrokerUsers) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# nats.conf of Platform %s/%s, rendered by %s; edits are overwritten.\n", p.Namespace, p.Name, FieldManager)
	b.WriteString("# Each service logs in as its own user; the bcrypt hashes below check the passwords of Secrets " + p.Name + "-<service>-nats.\n")
	b.WriteString("# Server-to-server credentials are read from the environment (Secret " + AuthSecretName(p) + "), never written here.\n")
	fmt.Fprintf(&b, "listen: \"0.0.0.0:%d\"\n", ClientPort)
	fmt.Fprintf(&b, "http: \"0.0.0.0:%d\"\n", MonitorPort)
	b.WriteString("\n")
	b.WriteString("jetstream {\n")
	fmt.Fprintf(&b, "  store_dir: %q\n", brokerStoreDir)
	size := brokerStoreBytes(p)
	if memoryStorage(p) {
		fmt.Fprintf(&b, "  max_memory_store: %d\n", size)
		// No volume to fill: file streams (and the clustered meta log)
		// go to an emptyDir, limited only by the node.
	} else {
		fmt.Fprintf(&b, "  max_file_store: %d\n", size)
	}
	b.WriteString("}\n\n")
	b.WriteString("authorization {\n")
	b.WriteString("  # One user per service, allowed what its catalog row says and nothing else.\n")
	b.WriteString("  users: [\n")
	running := brokerServices(plans)
	for _, s := range plans {
		if !s.UsesBroker() {
			continue
		}
		perms, err := PermissionsFor(s.Service, running)
		if err != nil {
			return "", err
		}
		writeBrokerUser(&b, users[s.Name], perms)
	}
	b.WriteString("    # The administrative user, for people (switchboard dlq, the nats CLI): the route credentials.\n")
	fmt.Fprintf(&b, "    {user: $%s, password: $%s}\n", envNATSUser, envNATSPassword)
	b.WriteString("  ]\n")
	b.WriteString("}\n")

	if n := BrokerReplicas(p); n > 1 {
		b.WriteString("\ncluster {\n")
		fmt.Fprintf(&b, "  name: %q\n", p.Name)
		fmt.Fprintf(&b, "  listen: \"0.0.0.0:%d\"\n", ClusterPort)
		b.WriteString("  authorization {\n")
		fmt.Fprintf(&b, "    user: $%s\n    password: $%s\n", envNATSUser, envNATSPassword)
		b.WriteString("  }\n")
		b.WriteString("  routes: [\n")
		for i := range n {
			fmt.Fprintf(&b, "    $%s%d\n", envRoutePrefix, i)
		}
		b.WriteString("  ]\n")
		b.WriteString("}\n")
		// A server a scale-down takes away stays a member of the JetStream
		// meta group, counted in its quorum, until the system account
		// removes it; the operator does, as this user (see
		// controllers' removeDepartedPeers).
		b.WriteString("\naccounts {\n")
		b.WriteString("  # The system account: the operator removes departed servers from the JetStream meta group as this user.\n")
		fmt.Fprintf(&b, "  SYS: {users: [{user: $%s, password: $%s}]}\n", envNATSSystemUser, envNATSSystemPassword)
		b.WriteString("}\n")
		b.WriteString("system_account: SYS\n")
	}
	return b.String(), nil
}

// brokerServices are the names of the enabled services that use the
// broker, in catalog order: who owns which stream and bucket follows from
// them (catalog.StreamOwner, BucketOwner), in the permissions and in each
// service's BROKER_SERVICES alike.
func brokerServices(plans []ServicePlan) []string {
	var out []string
	for _, s := range plans {
		if s.UsesBroker() {
			out = append(out, s.Name)
		}
	}
	return out
}

// writeBrokerUser writes a service's entry of the users list. Empty
// permissions allow nothing: an empty allow list would allow everything,
// so they deny ">".
func writeBrokerUser(b *strings.Builder, u BrokerUser, perms BrokerPermissions) {
	b.WriteString("    {\n")
	fmt.Fprintf(b, "      user: %q\n", u.User)
	fmt.Fprintf(b, "      password: %q\n", u.PasswordHash)
	b.WriteString("      permissions: {\n")
	for _, dir := range []struct {
		name     string
		subjects []string
	}{{"publish", perms.Publish}, {"subscribe", perms.Subscribe}} {
		if len(dir.subjects) == 0 {
			fmt.Fprintf(b, "        %s: {deny: [\">\"]}\n", dir.name)
			continue
		}
		fmt.Fprintf(b, "        %s: {allow: [\n", dir.name)
		for _, s := range dir.subjects {
			fmt.Fprintf(b, "          %q\n", s)
		}
		b.WriteString("        ]}\n")
	}
	b.WriteString("      }\n")
	b.WriteString("    }\n")
}

func brokerConfigMap(p *v1alpha1.Platform, config string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   typeMeta("v1", "ConfigMap"),
		ObjectMeta: objectMeta(p, BrokerConfigName(p), ComponentBroker),
		Data:       map[string]string{brokerConfigKey: config},
	}
}

func brokerServicePorts(withCluster bool) []corev1.ServicePort {
	ports := []corev1.ServicePort{{
		Name: "client", Port: ClientPort, TargetPort: intstr.FromString("client"), Protocol: corev1.ProtocolTCP,
	}}
	if withCluster {
		ports = append(ports, corev1.ServicePort{
			Name: "cluster", Port: ClusterPort, TargetPort: intstr.FromString("cluster"), Protocol: corev1.ProtocolTCP,
		})
	}
	return append(ports, corev1.ServicePort{
		Name: "monitor", Port: MonitorPort, TargetPort: intstr.FromString("monitor"), Protocol: corev1.ProtocolTCP,
	})
}

// brokerHeadlessService governs the StatefulSet: it gives each pod the DNS
// name its peers route to, published before the pod is ready because a
// cluster cannot become ready before its routes connect.
func brokerHeadlessService(p *v1alpha1.Platform) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(p, BrokerHeadlessName(p), ComponentBroker),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 SelectorLabels(p, ComponentBroker),
			Ports:                    brokerServicePorts(true),
		},
	}
}

// brokerClientService carries no metrics port: the chart's PodMonitor
// scrapes each broker pod's metrics port directly, which is what per-pod
// figures need, and a Service port would only add a load-balanced address
// that answers for a random pod.
func brokerClientService(p *v1alpha1.Platform) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(p, BrokerName(p), ComponentBroker),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: SelectorLabels(p, ComponentBroker),
			Ports:    brokerServicePorts(false),
		},
	}
}

// brokerEnv fills the variables nats.conf and the args refer to. The route
// variables use the kubelet's $(VAR) expansion of earlier variables, so the
// pod spec carries references to the credentials, never their values.
func brokerEnv(p *v1alpha1.Platform) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: envPodName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		secretEnv(p, envNATSUser, SecretKeyNATSUser),
		secretEnv(p, envNATSPassword, SecretKeyNATSPassword),
	}
	if n := BrokerReplicas(p); n > 1 {
		env = append(env,
			secretEnv(p, envNATSSystemUser, SecretKeyNATSSystemUser),
			secretEnv(p, envNATSSystemPassword, SecretKeyNATSSystemPassword))
		for i := range n {
			env = append(env, corev1.EnvVar{
				Name:  fmt.Sprintf("%s%d", envRoutePrefix, i),
				Value: fmt.Sprintf("nats://$(%s):$(%s)@%s:%d", envNATSUser, envNATSPassword, brokerPodHost(p, i), ClusterPort),
			})
		}
	}
	return env
}

// brokerMetricsSidecar runs `switchboard broker-metrics` from the services
// image beside the server: nats-server serves its figures only as JSON on
// the monitor port, which the sidecar reaches on the pod's loopback. It
// holds no credentials (the monitor asks for none) and has no readiness
// probe, so the broker pod's readiness stays the server's alone.
func brokerMetricsSidecar(p *v1alpha1.Platform, opts Options) corev1.Container {
	return corev1.Container{
		Name:    metricsContainer,
		Image:   servicesImage(p, opts),
		Command: []string{"/switchboard"},
		Args: []string{"broker-metrics",
			"--monitor-url", "http://127.0.0.1:" + itoa(MonitorPort),
			"--addr", ":" + itoa(MetricsPort)},
		Ports:         []corev1.ContainerPort{{Name: PortNameMetrics, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP}},
		LivenessProbe: httpProbe("/healthz", PortNameMetrics, 10, 1, 3),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("16Mi"),
			},
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: containerSecurityContext(),
	}
}

func brokerStatefulSet(p *v1alpha1.Platform, c Credentials, config string, opts Options) *appsv1.StatefulSet {
	replicas := BrokerReplicas(p)
	configHash := sha256.Sum256([]byte(config))

	ports := []corev1.ContainerPort{
		{Name: "client", ContainerPort: ClientPort, Protocol: corev1.ProtocolTCP},
		{Name: "cluster", ContainerPort: ClusterPort, Protocol: corev1.ProtocolTCP},
		{Name: "monitor", ContainerPort: MonitorPort, Protocol: corev1.ProtocolTCP},
	}
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: brokerConfigDir, ReadOnly: true},
		{Name: brokerDataVolume, MountPath: brokerDataDir},
	}
	volumes := []corev1.Volume{{
		Name: "config",
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: BrokerConfigName(p)},
		}},
	}}
	var claims []corev1.PersistentVolumeClaim
	if memoryStorage(p) {
		// JetStream still needs a writable store_dir (the clustered meta
		// log lives there even when streams are in memory).
		volumes = append(volumes, corev1.Volume{Name: brokerDataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	} else {
		claims = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: brokerDataVolume, Labels: SelectorLabels(p, ComponentBroker)},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: p.Spec.Broker.JetStream.StorageClassName,
				VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: brokerSize(p)},
				},
			},
		}}
	}

	pod := corev1.PodSpec{
		AutomountServiceAccountToken: ptr.To(false),
		EnableServiceLinks:           ptr.To(false),
		SecurityContext:              podSecurityContext(brokerUID),
		Containers: []corev1.Container{{
			Name:      brokerContainer,
			Image:     brokerImage(p, opts),
			Args:      []string{"--config", brokerConfigDir + "/" + brokerConfigKey, "--name", "$(" + envPodName + ")"},
			Ports:     ports,
			Env:       brokerEnv(p),
			Resources: brokerResources(p),
			// Startup waits for the full health check (JetStream caught up
			// with its streams and peers); afterwards liveness and readiness
			// only ask whether JetStream is enabled, so a cluster-wide stream
			// problem never turns into every broker pod being restarted.
			StartupProbe:    httpProbe("/healthz", "monitor", 10, 5, 90),
			LivenessProbe:   httpProbe("/healthz?js-enabled-only=true", "monitor", 30, 5, 3),
			ReadinessProbe:  httpProbe("/healthz?js-enabled-only=true", "monitor", 10, 5, 3),
			VolumeMounts:    mounts,
			SecurityContext: containerSecurityContext(),
		}},
		Volumes: volumes,
	}
	if brokerMetricsEnabled(p) {
		pod.Containers = append(pod.Containers, brokerMetricsSidecar(p, opts))
	}
	if replicas > 1 {
		// Spread the quorum so one node failure costs at most one member.
		pod.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       "kubernetes.io/hostname",
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)},
		}}
	}

	return &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: objectMeta(p, BrokerName(p), ComponentBroker),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: BrokerHeadlessName(p),
			// All members must start together to elect a JetStream meta
			// leader; OrderedReady would wait for pod 0 to be ready, which
			// it cannot be alone.
			PodManagementPolicy:  appsv1.ParallelPodManagement,
			RevisionHistoryLimit: ptr.To[int32](3),
			UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Selector:             &metav1.LabelSelector{MatchLabels: SelectorLabels(p, ComponentBroker)},
			// Volumes outlive the StatefulSet: deleting a Platform by
			// mistake must not delete its streams. Recreate it to reattach.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: Labels(p, ComponentBroker),
					Annotations: map[string]string{
						AnnotationConfigHash: hex.EncodeToString(configHash[:])[:16],
						AnnotationAuthHash:   c.hash(),
						// kubectl logs and exec pick the server, not the
						// metrics sidecar, when no container is named.
						annotationDefaultContainer: brokerContainer,
					},
				},
				Spec: pod,
			},
			VolumeClaimTemplates: claims,
		},
	}
}

func brokerPDB(p *v1alpha1.Platform) *policyv1.PodDisruptionBudget {
	return pdb(p, BrokerName(p), ComponentBroker)
}

func pdb(p *v1alpha1.Platform, name, component string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   typeMeta("policy/v1", "PodDisruptionBudget"),
		ObjectMeta: objectMeta(p, name, component),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: SelectorLabels(p, component)},
			// A crash-looping pod must not block a node drain.
			UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
		},
	}
}

// brokerResources are spec.broker.resources, else modest requests and no
// limits: a JetStream server's memory grows with its streams, and an OOM
// kill costs a quorum member.
func brokerResources(p *v1alpha1.Platform) corev1.ResourceRequirements {
	if r := p.Spec.Broker.Resources; r != nil {
		return *r.DeepCopy()
	}
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("100m"),
		corev1.ResourceMemory: resource.MustParse("128Mi"),
	}}
}
