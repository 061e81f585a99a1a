# postage — the two commands: `make run` and `make test`.
GO      ?= go
BIN     := bin/postage
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X postage/internal/app.Version=$(VERSION)

# cross: the platforms `make cross` (and so `make test`, and CI) builds for.
CROSS   := linux/amd64 darwin/arm64 windows/amd64

.PHONY: run test test-cluster cross deps build build-bench bench bench-ingest bench-invoices bench-usage bench-cluster bench-pricing bench-simulate fuzz clean

## run: install what is missing, start private databases under ./data, migrate, seed, serve
run: deps build
	./$(BIN) dev

# CLUSTER_SUITES: the packages whose suites run a second time on a ClickHouse
# cluster of 2 shards x 3 replicas (internal/testenv, docs/SCALING.md).
CLUSTER_SUITES := ./metering ./billing ./reports

## test: install what is missing, build for every platform, run the whole suite against real servers,
## then the metering, billing and reports suites again on a ClickHouse cluster
test: deps cross
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './web/node_modules/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 40m ./...
	POSTAGE_TEST_CLICKHOUSE=cluster $(GO) test -race -count=1 -timeout 40m $(CLUSTER_SUITES)

## test-cluster: only the suites that run on the ClickHouse cluster, on it
test-cluster: deps
	POSTAGE_TEST_CLICKHOUSE=cluster $(GO) test -race -count=1 -timeout 40m $(CLUSTER_SUITES)

## cross: build every package for Linux, macOS and Windows (managed servers are Linux-only
## at run time, but everything builds everywhere Go does)
cross:
	@for p in $(CROSS); do \
	  echo "go build ./... for $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... || exit 1; \
	done

## deps: install missing Debian packages (clickhouse-server, clickhouse-client, postgresql, chromium, poppler-utils)
deps:
	@bash scripts/install-deps.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/postage

## build-bench: the benchmark command (not part of the server binary)
build-bench:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/postage-bench ./cmd/postage-bench

## bench: every benchmark; figures go to docs/BENCHMARKS.md
bench: bench-pricing bench-simulate bench-ingest bench-invoices bench-usage bench-cluster

## bench-pricing: rating 50,000 customers x 150 countries x 2 categories vs a multiply-add baseline
bench-pricing:
	$(GO) test ./pricing -run '^$$' -bench Rate50k -benchtime 3x -benchmem

## bench-simulate: a 50,000-customer x 3-month simulation vs its raw aggregate queries
bench-simulate: deps
	$(GO) test ./reports -run '^$$' -bench Simulate -benchtime 3x

## bench-ingest: HTTP ingest vs a clickhouse-client bulk load, usage latency on a filled table
bench-ingest: deps build-bench
	./bin/postage-bench ingest

## bench-invoices: an invoice run of 50,000 customers vs the raw GROUP BY of the month
bench-invoices: deps build-bench
	./bin/postage-bench invoices

## bench-cluster: ingest and an invoice run on a 2x2 ClickHouse cluster vs one server
bench-cluster: deps build-bench
	./bin/postage-bench cluster --customers 5000 --events 2000000 --clients 16 --repeat 3

## bench-usage: usage and month-to-date bill latency on a 10M-event table (rollups vs raw)
bench-usage: deps build-bench
	./bin/postage-bench usage

## fuzz: a minute of fuzzing for each decoder and the router (corpora are committed under testdata/fuzz)
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeBatch -fuzztime 60s ./metering
	$(GO) test -run '^$$' -fuzz FuzzValidJSON -fuzztime 60s ./metering
	$(GO) test -run '^$$' -fuzz FuzzWireString -fuzztime 60s ./metering
	$(GO) test -run '^$$' -fuzz FuzzDecodeBinaryData -fuzztime 60s ./metering
	$(GO) test -run '^$$' -fuzz FuzzDecodeWebhook -fuzztime 60s ./metering
	$(GO) test -run '^$$' -fuzz FuzzDecodeCSV -fuzztime 60s ./pricing
	$(GO) test -run '^$$' -fuzz FuzzRouter -fuzztime 60s ./internal/httpapi

clean:
	rm -rf bin
