# Gatehouse: the two set-up commands are `make run` and `make test`.
GO      ?= go
BIN     := bin/gatehouse
PKGS    := ./...

.PHONY: run test build lint bench bench-load fuzz clean

run: ## start Gatehouse in dev mode (embedded store, demo policy and users, ephemeral keys)
	$(GO) run ./cmd/gatehouse serve

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/gatehouse

test: ## gofmt check, go vet, the race-enabled test suite, the deploy manifests check, the browser end-to-end test, and the demo policy cases
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 $(PKGS)
	cd deploy/verify && $(GO) vet ./... && $(GO) test -count=1 ./...
	cd e2e && $(GO) vet ./... && $(GO) test -count=1 ./...
	$(GO) run ./cmd/gatehouse policy test deploy/dev/policy.yaml deploy/dev/cases.yaml

lint: ## vet plus the demo policy's lint
	$(GO) vet $(PKGS)
	$(GO) run ./cmd/gatehouse policy lint deploy/dev/policy.yaml

bench: ## decision hot-path benchmarks
	$(GO) test -run='^$$' -bench=. -benchmem ./policy/ ./token/ ./extauthz/

bench-load: ## load harness: throughput vs a no-op ext_authz floor, revocation propagation, memory (needs redis-server; ~3 min; BENCH_FLAGS for bench/README.md's flags)
	$(GO) build -o bin/gatehouse ./cmd/gatehouse
	$(GO) build -o bin/bench-noop ./bench/noop
	$(GO) build -o bin/bench ./bench
	./bin/bench -gatehouse bin/gatehouse -noop bin/bench-noop $(BENCH_FLAGS)

fuzz: ## each fuzz target for 60s
	$(GO) test -run='^$$' -fuzz=FuzzCanonicalPath -fuzztime=60s ./policy/
	$(GO) test -run='^$$' -fuzz=FuzzMatch -fuzztime=60s ./policy/
	$(GO) test -run='^$$' -fuzz=FuzzVerify -fuzztime=60s ./token/
	$(GO) test -run='^$$' -fuzz=FuzzCheckAuthorization -fuzztime=60s ./extauthz/
	$(GO) test -run='^$$' -fuzz=FuzzDecodeRequest -fuzztime=60s ./extauthz/

clean:
	rm -rf bin
