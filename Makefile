# Image URL to use for building and pushing the manager image.
IMG ?= controller:latest

# Tools are installed with `go install` at pinned versions into bin/, as the
# kubebuilder scaffold does: bin/<tool>-<version> with a bin/<tool> symlink.
LOCALBIN ?= $(shell pwd)/bin
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
KUSTOMIZE_VERSION ?= v5.8.1
KUSTOMIZE ?= $(LOCALBIN)/kustomize
KUBECTL ?= kubectl
# CONTAINER_TOOL builds and pushes the manager image (docker, or podman).
CONTAINER_TOOL ?= docker

# kube-apiserver, etcd and kubectl for envtest, the e2e tests and `make run` come
# from hack/k8s/binaries.sh: $KUBEBUILDER_ASSETS when it holds them, else
# bin/k8s/v<version>, filled by setup-envtest's download or, where its site is out
# of reach, by a build from the Go module proxy. It prints their directory. The
# version is the k8s.io/kubernetes require in hack/k8s/go.mod, and only there.
K8S_BINARIES := hack/k8s/binaries.sh
# nats-server for the tests that run NATS as processes (test/natscluster):
# hack/nats/nats-server.sh prints its path, $NATS_SERVER_BIN when set, else
# bin/nats-server/<version>, built from the Go module proxy at the version of
# the github.com/nats-io/nats-server/v2 require in go.mod.
NATS_SERVER := hack/nats/nats-server.sh

GO_PACKAGES := ./...

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate WebhookConfiguration, ClusterRole and CustomResourceDefinition objects.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt" paths="./..."

# Every file under the directories that `manifests` and `generate` write to,
# with a hash of its content: verify-generated compares it before and after
# regenerating, so uncommitted work in progress does not fail the check.
GENERATED_DIRS := api config
GENERATED_FINGERPRINT = find $(GENERATED_DIRS) -type f -exec sha256sum {} + 2>/dev/null | LC_ALL=C sort -k 2

.PHONY: verify-generated
verify-generated: controller-gen ## Fail when `make manifests generate` changes api/ or config/ (stale generated files).
	@before=$$(mktemp) && after=$$(mktemp) && trap 'rm -f "$$before" "$$after"' EXIT && \
	$(GENERATED_FINGERPRINT) >"$$before" && \
	$(MAKE) --no-print-directory manifests generate && \
	$(GENERATED_FINGERPRINT) >"$$after" && \
	if ! cmp -s "$$before" "$$after"; then \
		echo "verify-generated: the generated CRDs, RBAC or deepcopy code were stale;"; \
		echo "'make manifests generate' has now rewritten these files, commit them:"; \
		diff "$$before" "$$after" | sed -n 's/^[<>] [0-9a-f]*  */  /p' | LC_ALL=C sort -u; \
		exit 1; \
	fi

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: fmt-check
fmt-check: ## Fail when gofmt would change a file.
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet against the code.
	go vet $(GO_PACKAGES)

.PHONY: test
test: fmt-check vet lint verify-generated test-unit test-bench-compiles ## Run every test: formatting, vet, golangci-lint, unit, conformance, envtest and e2e tests with -race.

.PHONY: test-unit
test-unit: ## Unit, conformance, integration (envtest) and e2e tests with the race detector.
	@assets=$$($(K8S_BINARIES)) && nats=$$($(NATS_SERVER)) && set -x && \
	KUBEBUILDER_ASSETS="$$assets" NATS_SERVER_BIN="$$nats" go test -race -count=1 $(GO_PACKAGES)

.PHONY: test-bench-compiles
test-bench-compiles: ## Build the side-by-side benchmark modules (hack/bench, hack/storebench) so they cannot rot.
	cd hack/bench && go vet ./...
	cd hack/storebench && GOWORK=off go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run

##@ Benchmarks

.PHONY: bench
bench: ## Engine benchmarks (one run, allocations reported).
	go test -run '^$$' -bench . -benchmem ./internal/engine/...

.PHONY: bench-compare
bench-compare: ## Our engine against Watermill v1.5.1: alternating rounds, ratio per round.
	hack/bench/compare.sh 5 3s

.PHONY: bench-http
bench-http: ## HTTP API over loopback, 64 keep-alive clients (in the process, then in a child process), against a bare net/http handler, and unkeyed/keyed/If-Match appends; 3 alternating rounds.
	@# Rounds, not -count 3: -count repeats each sub-benchmark back to back,
	@# so a machine that slows down between memory and disk skews the ratio.
	go test -c -o bin/httpapi.bench.test ./internal/httpapi/
	for round in 1 2 3; do (cd internal/httpapi && ../../bin/httpapi.bench.test -test.run '^$$' -test.bench 'HTTP' -test.benchtime 3s) || exit 1; done

.PHONY: bench-disk
bench-disk: ## Durable ingest (--storage=disk): group commit against an fdatasync per event, engine level, 3 runs of each (-count 3).
	go test -run '^$$' -bench DiskIngest -benchtime 3s -count 3 ./internal/engine/disk/

.PHONY: bench-manager
bench-manager: ## The manager binary as a user runs it (own process, clients in another, kube-apiserver beside): ingest memory vs disk in interleaved pairs, the backlog and readable latency on disk, a restart with 1M events in the outbox log.
	go test -c -o bin/perf.bench.test ./test/perf/
	@assets=$$($(K8S_BINARIES)) && cd test/perf && export KUBEBUILDER_ASSETS="$$assets" && \
	../../bin/perf.bench.test -test.run '^$$' -test.bench 'ManagerIngestInterleaved|ManagerReadable|ManagerBacklog|ManagerRestart' -test.benchtime 1x

.PHONY: bench-entities
bench-entities: ## Entity appends through the manager binary (as bench-manager runs it): unkeyed, keyed and If-Match appends, 64 clients, memory and disk, alternating rounds.
	go test -c -o bin/perf.bench.test ./test/perf/
	@assets=$$($(K8S_BINARIES)) && cd test/perf && export KUBEBUILDER_ASSETS="$$assets" && \
	../../bin/perf.bench.test -test.run '^$$' -test.bench 'ManagerConditionalAppends' -test.benchtime 1x

.PHONY: bench-live
bench-live: ## Live reads through the manager binary (as bench-manager runs it): 20 SSE readers in one process while another posts 2,000 events/s for 10 s; lag from 202 to arrival, events seen per reader; memory and disk.
	go test -c -o bin/perf.bench.test ./test/perf/
	@assets=$$($(K8S_BINARIES)) && cd test/perf && export KUBEBUILDER_ASSETS="$$assets" && \
	../../bin/perf.bench.test -test.run '^$$' -test.bench 'ManagerLiveFanout' -test.benchtime 1x

.PHONY: bench-reactor
bench-reactor: ## Reactors through the manager binary (as bench-manager runs it): deliveries/s to a sink in its own process against a bare Go client with 16 workers, with and without replies; ingest and a projection beside a reactor whose sink never answers; memory and disk.
	go test -c -o bin/perf.bench.test ./test/perf/
	@assets=$$($(K8S_BINARIES)) && cd test/perf && export KUBEBUILDER_ASSETS="$$assets" && \
	../../bin/perf.bench.test -test.run '^$$' -test.bench 'ManagerReactor' -test.benchtime 1x

.PHONY: bench-nats
bench-nats: ## --storage=nats through the manager binary (as bench-manager runs it) against a bare nats.go client on the same JetStream, 64 clients, single events and NDJSON batches of 100: one nats-server process, then a cluster of three (R3); memory, disk and nats side by side. Interleaved rounds.
	go test -c -o bin/perf.bench.test ./test/perf/
	@assets=$$($(K8S_BINARIES)) && nats=$$($(NATS_SERVER)) && cd test/perf && \
	export KUBEBUILDER_ASSETS="$$assets" NATS_SERVER_BIN="$$nats" && \
	../../bin/perf.bench.test -test.run '^$$' -test.bench 'ManagerNATS|ManagerStorages' -test.benchtime 1x -test.timeout 2h

.PHONY: bench-store
bench-store: ## bbolt against pebble on the outbox workload (hack/storebench, its own module).
	cd hack/storebench && CGO_ENABLED=0 GOWORK=off go test -run '^$$' -bench . -benchtime 3s -count 3 | tee out.txt | ./summary.sh

FUZZTIME ?= 45s
.PHONY: fuzz
fuzz: ## Fuzz the HTTP handler for FUZZTIME (the first run builds instrumented dependencies: minutes).
	go test -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZTIME) ./internal/httpapi/

##@ Build

# STORAGE=nats runs the manager on NATS JetStream: a server run-local starts,
# or the servers NATS_URL names.
STORAGE ?= memory
NATS_URL ?=
.PHONY: run
run: manifests generate build ## Run the manager: on the cluster of your kubeconfig, else on a local control plane it starts (Ctrl-C stops all); STORAGE=nats for NATS JetStream.
	go build -o bin/run-local ./cmd/run-local
	bin/run-local --manager=bin/manager --storage=$(STORAGE) $(if $(NATS_URL),--nats-url=$(NATS_URL))

.PHONY: build
build: fmt-check vet ## Build the manager binary.
	go build -o bin/manager ./cmd/manager

##@ Deployment

# The pipelines below fail when kustomize fails, not only when kubectl does.
install uninstall deploy undeploy build-installer: SHELL := /usr/bin/env bash -o pipefail

# What deploy, undeploy and build-installer install: config/default (one
# replica, disk storage) or config/nats (three replicas on NATS JetStream;
# docs/deploy.md).
DEPLOY_CONFIG ?= config/default

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: docker-build
docker-build: ## Build the manager image IMG with the root Dockerfile.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the manager image IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml: CRDs, RBAC and the manager (image IMG) in one file.
	mkdir -p dist
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=$(IMG)
	{ "$(KUSTOMIZE)" build $(DEPLOY_CONFIG); echo "---"; "$(KUSTOMIZE)" build config/api-roles; } > dist/install.yaml

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster of the current kubeconfig context.
	"$(KUSTOMIZE)" build config/crd | $(KUBECTL) apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs (and every Stream, Pipeline, Projection); ignore-not-found=true to ignore missing ones.
	"$(KUSTOMIZE)" build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the manager (DEPLOY_CONFIG: config/default, or config/nats) and the API's roles (config/api-roles), image IMG, into the cluster of the current kubeconfig context.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=$(IMG)
	"$(KUSTOMIZE)" build $(DEPLOY_CONFIG) | $(KUBECTL) apply -f -
	"$(KUSTOMIZE)" build config/api-roles | $(KUBECTL) apply -f -

.PHONY: undeploy
undeploy: kustomize ## Remove what deploy created; ignore-not-found=true to ignore missing objects.
	"$(KUSTOMIZE)" build config/api-roles | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -
	"$(KUSTOMIZE)" build $(DEPLOY_CONFIG) | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: k8s-binaries
k8s-binaries: ## Find, download (setup-envtest) or build kube-apiserver, etcd and kubectl; print their directory.
	@$(K8S_BINARIES)

.PHONY: nats-server
nats-server: ## Find or build nats-server (go.mod's version, from the Go module proxy) for the tests that run NATS as processes; print its path.
	@$(NATS_SERVER)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize into bin/.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

# go-install-tool installs package $2 at version $3 as $1-$3 and links $1 to it.
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f $(1) ;\
GOBIN=$(LOCALBIN) go install $${package} ;\
mv $(1) $(1)-$(3) ;\
} ;\
ln -sf $(1)-$(3) $(1)
endef
