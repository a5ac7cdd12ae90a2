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

# Go benchmarks; results land in bench/results/latest.txt.
bench:
	mkdir -p bench/results
	$(GO) test -run '^$$' -bench . -benchmem -count 5 $(PKGS) | tee bench/results/latest.txt

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
