# postage — the two commands: `make run` and `make test`.
GO      ?= go
BIN     := bin/postage
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X postage/internal/app.Version=$(VERSION)

.PHONY: run test deps build bench bench-ingest bench-invoices bench-go fuzz clean

## run: install what is missing, start private databases under ./data, migrate, seed, serve
run: deps build
	./$(BIN) dev

## test: install what is missing and run the whole suite against real servers
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 40m ./...

## deps: install missing Debian packages (clickhouse-server, clickhouse-client, postgresql, chromium, poppler-utils)
deps:
	@bash scripts/install-deps.sh

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/postage

## bench: every benchmark; figures go to docs/BENCHMARKS.md
bench: bench-go bench-ingest bench-invoices

bench-go: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./pricing/...

bench-ingest: deps build
	./$(BIN) bench ingest

bench-invoices: deps build
	./$(BIN) bench invoices

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeBatch -fuzztime 60s ./metering

clean:
	rm -rf bin
