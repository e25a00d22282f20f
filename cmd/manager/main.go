// Command manager runs the Switchboard operator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/switchboard-dev/switchboard/api/v1alpha1"
	"github.com/switchboard-dev/switchboard/controllers"
	"github.com/switchboard-dev/switchboard/internal/brokermon"
	"github.com/switchboard-dev/switchboard/internal/render"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultImageRepo is where release images are published; the services
// image defaults to the operator's own version so both move in lockstep.
const defaultImageRepo = "ghcr.io/switchboard-dev/switchboard"

func main() {
	var (
		metricsAddr, probeAddr, servicesImage, brokerImage, operatorNamespace, watchNamespaces string
		leaderElect                                                                            bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader, so only one replica reconciles at a time.")
	flag.StringVar(&servicesImage, "services-image", defaultImageRepo+":"+version, "Image that runs the services when a Platform sets no spec.image.")
	flag.StringVar(&brokerImage, "default-broker-image", render.DefaultBrokerImage, "Image of the NATS broker when a Platform sets no spec.broker.image (default: the official image of the nats-server version Switchboard embeds).")
	flag.StringVar(&operatorNamespace, "operator-namespace", inClusterNamespace(),
		"Namespace the operator's pods run in: each broker's NetworkPolicy admits them to its monitor (port 8222), which the operator reads for status. Default: $POD_NAMESPACE, else the service account's namespace; empty adds no rule.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces whose Platforms the operator reconciles; it then needs permissions only there (the chart's watchNamespaces). Empty: every namespace.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	namespaces, err := parseNamespaces(watchNamespaces)
	if err != nil {
		log.Error(err, "invalid --watch-namespaces")
		os.Exit(2)
	}
	if err := run(metricsAddr, probeAddr, servicesImage, brokerImage, operatorNamespace, namespaces, leaderElect); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(render.AddToScheme(s))
	return s
}

func run(metricsAddr, probeAddr, servicesImage, brokerImage, operatorNamespace string, watchNamespaces []string, leaderElect bool) error {
	log := ctrl.Log.WithName("setup")
	scheme := newScheme()

	cacheOpts, err := controllers.CacheOptions(scheme)
	if err != nil {
		return fmt.Errorf("cache options: %w", err)
	}
	cacheOpts = controllers.WatchNamespaces(cacheOpts, watchNamespaces)
	cfg := ctrl.GetConfigOrDie()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              controllers.LeaderElectionID,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOpts,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Without the CRD the controller cannot watch Platforms. Wait for it
	// instead of crashing, so `make deploy` before `make install` recovers,
	// and report not-ready meanwhile.
	var controllerStarted atomic.Bool
	if err := mgr.AddReadyzCheck("platform-controller", func(*http.Request) error {
		if !controllerStarted.Load() {
			return errors.New("waiting for the Platform CRD")
		}
		return nil
	}); err != nil {
		return err
	}
	reconciler := &controllers.PlatformReconciler{
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Scheme:            scheme,
		Recorder:          mgr.GetEventRecorder("switchboard-operator"),
		ServicesImage:     servicesImage,
		BrokerImage:       brokerImage,
		BrokerMonitor:     &brokermon.Client{},
		BrokerPeers:       &brokermon.PeerRemover{},
		OperatorNamespace: operatorNamespace,
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		if err := waitForCRD(ctx, mgr.GetRESTMapper(), log.Info); err != nil {
			return err
		}
		if err := reconciler.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the Platform controller: %w", err)
		}
		controllerStarted.Store(true)
		return nil
	})); err != nil {
		return err
	}

	log.Info("starting manager", "version", version, "servicesImage", servicesImage, "brokerImage", brokerImage, "operatorNamespace", operatorNamespace, "watchNamespaces", watchNamespacesForLog(watchNamespaces))
	return mgr.Start(ctrl.SetupSignalHandler())
}

// everyReplica is a runnable that runs on every replica, leader or not. The
// controller it registers still waits for leadership.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

func waitForCRD(ctx context.Context, mapper meta.RESTMapper, logf func(string, ...any)) error {
	gk := v1alpha1.GroupVersion.WithKind("Platform").GroupKind()
	for attempt := 0; ; attempt++ {
		_, err := mapper.RESTMapping(gk, v1alpha1.GroupVersion.Version)
		if err == nil {
			return nil
		}
		if !meta.IsNoMatchError(err) {
			return fmt.Errorf("looking up the Platform API: %w", err)
		}
		if attempt%6 == 0 {
			logf("waiting for the Platform CRD; install it with `make install` or the Helm chart", "crd", "platforms.platform.switchboard.dev")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
		}
	}
}

// serviceAccountNamespace is where the kubelet mounts the pod's namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// inClusterNamespace is the namespace the operator's pod runs in: from the
// downward API ($POD_NAMESPACE), else its service account; "" outside a
// cluster.
func inClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile(serviceAccountNamespace)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// parseNamespaces reads --watch-namespaces: names separated by commas,
// blanks around them ignored, each a valid namespace name, none twice.
func parseNamespaces(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		ns := strings.TrimSpace(f)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		if slices.Contains(out, ns) {
			return nil, fmt.Errorf("%q is listed twice", ns)
		}
		out = append(out, ns)
	}
	return out, nil
}

func watchNamespacesForLog(namespaces []string) string {
	if len(namespaces) == 0 {
		return "all"
	}
	return strings.Join(namespaces, ",")
}
