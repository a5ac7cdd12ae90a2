# Ceiba's build. `make test` is what CI runs; `make demo` is the main job.
GO      ?= go
PKGS    := ./...
FUZZTIME ?= 30s
BIN     := bin/ceiba

.PHONY: all build test webapp webapp-deps test-daemons cross release release-check demo bench fuzz lint soak clean

# Every platform a release is built for (make release, make cross).
TARGETS := linux/amd64 linux/arm64 darwin/arm64 darwin/amd64 windows/amd64 freebsd/amd64 android/arm64
# github.com/wlynxg/anet reaches into the standard library's net package
# through go:linkname, which the linker refuses by default on Android.
LDFLAGS_android := -checklinkname=0

all: build

build:
	$(GO) build -o $(BIN) ./cmd/ceiba

# vet, cross-compile every release target, then every test with the race
# detector. Fuzz targets run their seed corpora (testdata/fuzz) as ordinary
# tests here. gotestsum (pinned in tools/go.mod) runs go test and ends with
# the list of tests that skipped and why, so a test that silently stopped
# running (a missing tool, say) shows.
test: cross webapp-deps
	$(GO) vet $(PKGS)
	$(GO) tool -modfile=tools/go.mod gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg -- -race -timeout 20m $(PKGS)
	# Rotation at 10,000 recipients, too slow under the race detector (where
	# the test runs at 1,000), at full size.
	$(GO) test -count=1 -timeout 10m -run '^TestRotationRecipientLimit$$' ./node/
	# Issue 15's flood: a reader's host publishes 100,000 entries signed by
	# fresh, never-admitted keys (5,000 under the race detector above);
	# about 5 minutes on two loaded cores.
	CEIBA_FLOOD_ENTRIES=100000 $(GO) test -count=1 -timeout 20m -run '^TestUnadmittedEntryFloodStaysBounded$$' ./node/
	# 400 keyless hosts against a member's device behind NAT (skipped
	# under the race detector above, where the machine, not the node, ran
	# out of time); about a minute and a half.
	$(GO) test -count=1 -timeout 10m -run '^TestBareConnectionsDoNotKeepMembersOut$$' ./node/daemon/

# The web app's JavaScript packages, exactly as webapp/package-lock.json
# pins them (tests drive js-libp2p against real daemons), with
# webapp/.npmrc's settings (no peers installed on their own). npm ci again
# only when the lockfile or those settings change.
webapp-deps: webapp/node_modules/.package-lock.json
webapp/node_modules/.package-lock.json: webapp/package-lock.json webapp/package.json webapp/.npmrc
	npm ci --prefix webapp --no-audit --no-fund

# The reader's web app (issue 16), for ceiba daemon's [webapp] or any
# static web server: webapp/dist holds index.html, app.css, app.js
# (js-libp2p and the app, bundled by esbuild), core.wasm (webapp/core
# compiled to WebAssembly), wasm_exec.js (the loader of the Go release that
# compiled it), and build.json (every file's SHA-256; its own is the app's
# version). The same commit gives the same bytes: no build path or build
# ID in the core, esbuild and the packages pinned (docs/RELEASING.md).
webapp: webapp-deps
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w -buildid=" -o webapp/dist/core.wasm ./webapp/core/wasm
	node webapp/build.mjs webapp/dist webapp/dist/core.wasm "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js"

# Rotation with real daemons (1 steward, 1 organization, 60 readers as
# processes): about 4 minutes on two cores. Not in make test yet: its
# harness picks 124 loopback ports before the daemons bind them, and a run
# on 2026-12-06 lost one to another daemon (docs/SECURITY.md, How to run).
test-daemons:
	CEIBA_DAEMON_TESTS=1 $(GO) test -count=1 -timeout 20m -run '^TestRotationWithSixtyReaderDaemons$$' ./cmd/ceiba/

# Build ./cmd/ceiba for every release target, so a link failure on one
# platform cannot land. Nothing is written; -trimpath as in a release, so
# that make release afterwards finds every package compiled in the cache.
cross:
	@set -e; for t in $(TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; \
	  case $$os in android) ld='$(LDFLAGS_android)';; *) ld='';; esac; \
	  echo "cross $$t"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags="$$ld" -o /dev/null ./cmd/ceiba; \
	done

# Reproducible release binaries, Debian packages and SHA256SUMS in dist/
# (signed when RELEASE_KEY names the minisign secret key): docs/RELEASING.md.
release:
	packaging/release.sh

# Two clean builds of HEAD give the same bytes, and a signature over their
# checksums verifies with minisign and with ceiba itself. CI runs it.
release-check:
	packaging/reproduce.sh

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
	rm -rf bin dist
