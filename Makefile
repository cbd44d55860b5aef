# clickstream — build, test and run the platform on one machine.
#
#   make demo   the whole pipeline end to end on a local stack
#   make test   every test, against the real services (started if needed)

SHELL        := /bin/bash
GO           ?= go
BIN          := bin/clickstream
STACK        := deploy/local/stack.sh
STATE        ?= $(or $(CLICKSTREAM_STATE),$(HOME)/.local/state/clickstream)
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 40m
# Sourced before tests and the demo: the endpoints of the local stack.
WITH_STACK   := set -a; . $(STATE)/env; set +a;

.PHONY: all build test test-short bench bench-compare demo demo-down dev-up dev-down lint fuzz proto tidy-check clean rules

all: build

# VERSION is stamped into the binary (clickstream version, --version).
VERSION      ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags '-X main.version=$(VERSION)' -o $(BIN) ./cmd/clickstream

## test: start the local stack if needed, then run every test with -race.
## The Elasticsearch outage test stops Elasticsearch for 30 s, so it runs on
## its own, after every other test that needs Elasticsearch.
OUTAGE_TEST := ^TestIndexingSurvivesElasticsearchRestart$$
test: dev-up rules
	$(WITH_STACK) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -skip '$(OUTAGE_TEST)' ./...
	$(WITH_STACK) $(GO) test -race -count=1 -timeout 10m -run '$(OUTAGE_TEST)' -v ./indexer/ | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go'; exit $${PIPESTATUS[0]}

## rules: check the Prometheus rules and run their unit tests with promtool
## (Debian's prometheus package, which stack.sh installs).
PROMTOOL ?= promtool
rules:
	@command -v $(PROMTOOL) >/dev/null || $(STACK) tools
	$(PROMTOOL) check rules deploy/prometheus/alerts.yaml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yaml

## test-short: unit tests only, no services.
test-short:
	$(GO) test -short -count=1 ./...

## bench: benchmarks (numbers, never pass/fail), services included.
bench: dev-up build
	$(WITH_STACK) $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./...

## chaos: the fault matrix of internal/chaos against real processes: a fault-free
## run, then every fault class round after round for CHAOS_MINUTES, and a
## Markdown table per class (also in CHAOS_OUT). CHAOS_SEED replays a schedule
## (empty: random, printed). Restarts the stack's Kafka and Elasticsearch.
CHAOS_MINUTES ?= 10
CHAOS_SEED    ?=
CHAOS_CLASSES ?= all
CHAOS_OUT     ?= chaos-report.md
.PHONY: chaos
chaos: dev-up build
	$(WITH_STACK) CHAOS_MINUTES='$(CHAOS_MINUTES)' CHAOS_SEED='$(CHAOS_SEED)' CHAOS_CLASSES='$(CHAOS_CLASSES)' \
		$(GO) run ./cmd/chaos --bin $(BIN) --stack $(STACK) --out '$(CHAOS_OUT)'

## bench-compare: the aggregation job side by side with PySpark (cold and warm),
## DuckDB, Polars and chDB on the same generated Iceberg table, after checking
## that each gives clickstream's rows; plus the read-only floors. Installs its
## Python engines and the Iceberg Spark jar itself (bench/compare/setup.sh).
## Needs no running stack. Writes a table to stdout, BENCH_OUT/compare.json and
## PNG plots in BENCH_PLOTS. BENCH_EVENTS (10 M), BENCH_SHAPES (heavy,light),
## BENCH_USERS, BENCH_ROUNDS (3), BENCH_DIR, BENCH_CONTENDERS (see bench/compare).
BENCH_EVENTS ?= 10000000
BENCH_ROUNDS ?= 3
BENCH_SHAPES ?= heavy,light
BENCH_DIR    ?= bench/out/data
BENCH_OUT    ?= bench/out
BENCH_PLOTS  ?= docs/bench
bench-compare: build
	@setup=$$(bench/compare/setup.sh) || exit 1; eval "$$setup"; \
	$(GO) build -o bin/bench-compare ./bench/compare && $(GO) build -o bin/bench-rusage ./bench/compare/rusage && \
	BENCH_PYTHON="$$BENCH_PYTHON" BENCH_SPARK_JAR="$$BENCH_SPARK_JAR" BENCH_JAVA_HOME="$$BENCH_JAVA_HOME" \
	BENCH_EVENTS='$(BENCH_EVENTS)' BENCH_ROUNDS='$(BENCH_ROUNDS)' BENCH_SHAPES='$(BENCH_SHAPES)' \
	BENCH_DIR='$(BENCH_DIR)' BENCH_OUT='$(BENCH_OUT)' BENCH_PLOTS='$(BENCH_PLOTS)' \
	bin/bench-compare --bin $(BIN)

## demo: the pipeline end to end on the local stack.
demo: dev-up build
	$(WITH_STACK) deploy/local/demo.sh

demo-down:
	-deploy/local/demo.sh down
	$(STACK) down

dev-up:
	$(STACK) up

dev-down:
	$(STACK) down

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## fuzz: run every fuzz target for a while (FUZZTIME per target).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/event/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePatterns$$' -fuzztime $(FUZZTIME) ./internal/bots/
	$(GO) test -run '^$$' -fuzz '^FuzzCache$$' -fuzztime $(FUZZTIME) ./internal/bots/
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshalBinary$$' -fuzztime $(FUZZTIME) ./internal/aggregate/
	$(GO) test -run '^$$' -fuzz '^FuzzAppendJSON$$' -fuzztime $(FUZZTIME) ./internal/schema/
	$(GO) test -run '^$$' -fuzz '^FuzzAppend$$' -fuzztime $(FUZZTIME) ./internal/jsonstr/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckTask$$' -fuzztime $(FUZZTIME) ./worker/
	$(GO) test -run '^$$' -fuzz '^FuzzValidSpec$$' -fuzztime $(FUZZTIME) ./coordinator/
	$(GO) test -run '^$$' -fuzz '^FuzzValidRollupSpec$$' -fuzztime $(FUZZTIME) ./coordinator/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckRollupTask$$' -fuzztime $(FUZZTIME) ./worker/
	$(GO) test -run '^$$' -fuzz '^FuzzMergePartials$$' -fuzztime $(FUZZTIME) ./internal/rollup/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./internal/userset/

## proto: regenerate the gRPC code (committed) from proto/.
proto:
	proto/gen.sh

tidy-check:
	$(GO) mod tidy -diff

clean:
	rm -rf bin
