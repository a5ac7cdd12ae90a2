# Ceiba's build. `make test` is what CI runs; `make demo` is the main job.
GO      ?= go
PKGS    := ./...
FUZZTIME ?= 30s
BIN     := bin/ceiba

.PHONY: all build test demo bench fuzz lint soak clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ceiba

# vet, then every test with the race detector. Fuzz targets run their seed
# corpora (testdata/fuzz) as ordinary tests here.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout 20m $(PKGS)

demo: build
	./$(BIN) demo

# Benchmarks and the network simulator (docs/PERFORMANCE.md): raw output in
# bench/results/latest.txt, then the plot step writes the table
# (bench/results/latest.md) and PNG plots. About an hour on two cores; run it
# on a quiet machine. BENCH_ONLY=regexp runs some steps and keeps the others'
# earlier results (go run ./bench/cmd/ceiba-bench steps lists them).
BENCH_ONLY ?=
bench:
	$(GO) run ./bench/cmd/ceiba-bench run -out bench/results $(if $(BENCH_ONLY),-append -only '$(BENCH_ONLY)')
	$(GO) run ./bench/cmd/ceiba-bench report -out bench/results

# Every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet $(PKGS)

soak:
	CEIBA_SOAK=1 $(GO) test -race -timeout 60m -run 'Soak' $(PKGS)

clean:
	rm -rf bin
