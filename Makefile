# Switchboard Makefile, kubebuilder-style. Every tool it needs is built from
# Go modules into ./bin or a cache outside the clone; nothing is downloaded
# from a release site.

IMG ?= ghcr.io/switchboard-dev/switchboard:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Tool versions, pinned.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM_VERSION ?= v3.22.0
KUSTOMIZE_VERSION ?= v5.8.1
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ETCD_VERSION ?= v3.6.16
# protoc-gen-go comes from the protobuf runtime's module: keep them equal.
PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2

LOCALBIN ?= $(CURDIR)/bin
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/switchboard
ENVTEST_ASSETS ?= $(CACHE_DIR)/envtest/$(ENVTEST_K8S_VERSION)
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
KUSTOMIZE ?= $(LOCALBIN)/kustomize
PROTOC_GEN_GO ?= $(LOCALBIN)/protoc-gen-go
PROTOC_GEN_GO_GRPC ?= $(LOCALBIN)/protoc-gen-go-grpc
# protoc itself is Debian's protobuf-compiler (apt-get install protobuf-compiler).
PROTOC ?= protoc
MODULE := github.com/switchboard-dev/switchboard
CHART ?= charts/switchboard
KUBECTL ?= kubectl
GO_TEST_FLAGS ?= -count=1

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen api-markers ## Generate the CRD and RBAC from markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: generate-deepcopy generate-proto ## Generate DeepCopy methods and the gRPC code of proto/ (needs protoc).

.PHONY: generate-deepcopy
generate-deepcopy: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: generate-proto
generate-proto: protoc-gen-go protoc-gen-go-grpc ## Regenerate gen/ from proto/ with protoc and the pinned plugins.
	@command -v $(PROTOC) >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	rm -rf gen
	$(PROTOC) -I proto \
	  --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --go_out=. --go_opt=module=$(MODULE) \
	  --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) --go-grpc_out=. --go-grpc_opt=module=$(MODULE) \
	  $$(cd proto && find . -name '*.proto' | sed 's#^\./##' | LC_ALL=C sort)

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify-generated
verify-generated: manifests generate-deepcopy ## Fail if generated files differ from what is committed (gen/ is checked by verify-proto).
	@git diff --exit-code -- api config || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }

.PHONY: verify-proto
verify-proto: generate-proto ## Fail if gen/ differs from what proto/ generates (needs protoc; not part of make test).
	@test -z "$$(git status --porcelain -- gen)" || { git status --short -- gen; echo "gen/ is stale: run 'make generate-proto' and commit"; exit 1; }

.PHONY: verify-fmt
verify-fmt: ## Fail if any Go file is not gofmt-clean.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

.PHONY: test
test: verify-fmt vet verify-generated verify-chart-sync helm-lint envtest helm kustomize ## Run every test against real parts (envtest, embedded NATS, loopback HTTP).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" HELM="$(HELM)" KUSTOMIZE="$(KUSTOMIZE)" go test $(GO_TEST_FLAGS) ./...

.PHONY: api-markers
api-markers: ## Regenerate the markers of api/v1alpha1 that come from the catalog (workload Enum, services-key rule).
	go run ./hack/docgen -markers

.PHONY: api-docs
api-docs: manifests ## Regenerate docs/api.md (from the CRD), the tables of docs/architecture.md, docs/public-api.md and the API's markers (from the catalog).
	go run ./hack/docgen

.PHONY: bench
bench: envtest ## Run the benchmarks (figures go to docs/benchmarks.md).
	KUBEBUILDER_ASSETS="$(ENVTEST_ASSETS)" go test -run '^$$' -bench . -benchtime 5x ./controllers/
	go test -run '^$$' -bench 'ProductGet|Orders|BrokerFloor|ReserveRelease|Tokens' -benchtime 3s ./test/bench/
	@command -v nginx >/dev/null || echo "bench: nginx is not installed; BenchmarkProxy skips its nginx leg (Debian: apt-get install nginx-light wrk)"
	go test -run '^$$' -bench Proxy -benchtime 1x ./test/bench/
	go test -run '^$$' -bench . -benchtime 3x ./services/streaming/

.PHONY: bench-compare
bench-compare: ## BenchmarkOrders of BASE (a commit) and of this tree side by side, in turns: make bench-compare BASE=a2caa68^1 [ROUNDS=3] [BENCHTIMES="3s 12000x"].
	@[ -n "$(BASE)" ] || { echo "bench-compare: say which commit to compare with, e.g. make bench-compare BASE=a2caa68^1"; exit 2; }
	hack/bench-compare.sh '$(BASE)' $(or $(ROUNDS),3) $(BENCHTIMES)

# make chaos: SEEDS consecutive seeds (from 1) of ORDERS orders and FAULTS
# faults each; make chaos SEED=n reproduces one seed with its full report.
SEEDS ?= 20
ORDERS ?= 2000
FAULTS ?= 30

.PHONY: chaos
chaos: ## Chaos run (issue 12): the commerce platform as processes under seeded kills, pauses and broker restarts; checks money, stock, points and notifications. SEED=n for one seed.
	go run ./cmd/chaos -orders $(ORDERS) -faults $(FAULTS) $(if $(SEED),-seed $(SEED),-seeds $(SEEDS))

.PHONY: dev
dev: ## Run every service with an embedded NATS in one process (gateway on :8080).
	go run ./cmd/switchboard dev

.PHONY: console-test
console-test: ## Drive the console in Chromium (apt-get install chromium): switchboard dev, orders and a playback session through the API; screenshots to docs/img/. Not part of make test.
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$$CHROMIUM" ] || { echo "Chromium not found: apt-get update && apt-get install -y chromium (or set CHROMIUM)"; exit 1; }
	go test -tags console -count=1 -v -timeout 5m ./test/console/

.PHONY: keda-crds
keda-crds: ## Copy KEDA's ScaledObject CRD from the KEDA module go.mod requires into config/keda (for envtest).
	cp "$$(go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)/config/crd/bases/keda.sh_scaledobjects.yaml" config/keda/
	chmod 644 config/keda/keda.sh_scaledobjects.yaml

##@ Build

.PHONY: build
build: ## Build the manager and switchboard binaries into ./bin.
	go build -ldflags "-X main.version=$(VERSION)" -o $(LOCALBIN)/manager ./cmd/manager
	go build -ldflags "-X main.version=$(VERSION)" -o $(LOCALBIN)/switchboard ./cmd/switchboard

.PHONY: run
run: manifests generate-deepcopy fmt vet ## Run the operator from your host against the current kubeconfig.
	go run ./cmd/manager --services-image=$(IMG)

.PHONY: build-static
build-static: ## Build the image's static binaries into ./bin/static, with the Dockerfile's exact command.
	hack/build-static.sh $(LOCALBIN)/static $(VERSION)

.PHONY: docker-build
docker-build: ## Build the image IMG (one image: /manager and /switchboard). Needs a Docker engine.
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image IMG.
	docker push $(IMG)

##@ Helm chart

.PHONY: chart-sync
chart-sync: manifests ## Copy the CRD and the RBAC rules from config/ into the chart.
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml config/rbac/leader_election_role.yaml $(CHART)/files/rbac/

.PHONY: verify-chart-sync
verify-chart-sync: manifests ## Fail if the chart's CRD or RBAC rules differ from config/.
	@diff -r config/crd/bases $(CHART)/crds && \
	  diff config/rbac/role.yaml $(CHART)/files/rbac/role.yaml && \
	  diff config/rbac/leader_election_role.yaml $(CHART)/files/rbac/leader_election_role.yaml || \
	  { echo "the chart's CRD or RBAC is stale: run 'make chart-sync' and commit"; exit 1; }

.PHONY: helm-lint
helm-lint: helm ## Lint the chart, with its defaults and with every optional part on.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set platform.create=true,metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true,grafanaDashboard.enabled=true

.PHONY: kind-e2e
kind-e2e: ## Create a kind cluster, build and load the image, helm install, run a smoke order, delete the cluster. Needs Docker and kind.
	HELM="$(HELM)" VERSION="$(VERSION)" hack/kind-e2e.sh

##@ Local one-node Kubernetes (no Docker; root; see hack/cluster/README.md)

.PHONY: cluster-up
cluster-up: ## Build (once, into the cache) and boot a one-node Kubernetes over containerd; prints "ready .cluster/kubeconfig".
	CACHE_DIR="$(CACHE_DIR)" ENVTEST_ASSETS="$(ENVTEST_ASSETS)" VERSION="$(VERSION)" hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Take the local cluster down and check that nothing is left over (the build cache stays).
	CACHE_DIR="$(CACHE_DIR)" hack/cluster/down.sh

.PHONY: cluster-e2e
cluster-e2e: helm ## cluster-up, helm install, drive orders through real pods, then cluster-down (KEEP=1 keeps the cluster).
	CACHE_DIR="$(CACHE_DIR)" ENVTEST_ASSETS="$(ENVTEST_ASSETS)" HELM="$(HELM)" VERSION="$(VERSION)" hack/cluster/e2e.sh

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -f config/crd/bases

.PHONY: uninstall
uninstall: manifests ## Remove the CRD (and every Platform) from the cluster.
	$(KUBECTL) delete --ignore-not-found -f config/crd/bases

.PHONY: deploy
deploy: manifests ## Deploy the operator with kustomize (config/default), image IMG.
	$(KUBECTL) kustomize config/default | sed 's#controller:latest#$(IMG)#g' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove what deploy installed.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

##@ Tools

.PHONY: helm
helm: $(HELM) ## Build helm into ./bin.
$(HELM):
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize into ./bin (the packaging tests render config/default with it).
$(KUSTOMIZE):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen into ./bin.
$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: protoc-gen-go
protoc-gen-go: $(PROTOC_GEN_GO) ## Build protoc-gen-go into ./bin.
$(PROTOC_GEN_GO):
	GOBIN=$(LOCALBIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

.PHONY: protoc-gen-go-grpc
protoc-gen-go-grpc: $(PROTOC_GEN_GO_GRPC) ## Build protoc-gen-go-grpc into ./bin.
$(PROTOC_GEN_GO_GRPC):
	GOBIN=$(LOCALBIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: envtest
envtest: ## Build (once) kube-apiserver and etcd for envtest into the cache.
	ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) ENVTEST_ETCD_VERSION=$(ENVTEST_ETCD_VERSION) hack/envtest/build.sh "$(ENVTEST_ASSETS)"
