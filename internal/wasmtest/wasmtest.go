// Package wasmtest runs the web app's WebAssembly core under Node.js for
// tests, as a browser runs it: it finds Node.js, builds the core with the
// Go release at hand and names that release's wasm_exec.js loader. It is
// for tests only.
package wasmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Node returns the path of Node.js. Where it is missing the test cannot
// run: in CI (CI set) that fails the test, elsewhere it skips, saying what
// to install. needModules, when set, is a file under webapp/node_modules
// that must exist too (make test runs npm ci in webapp/).
func Node(t *testing.T, needModules string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil && needModules != "" {
		_, err = os.Stat(needModules)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Node.js and webapp/node_modules are needed (.ci/run installs nodejs and npm; make test runs npm ci in webapp/): %v", err)
		}
		t.Skipf("needs Node.js and `npm ci` in webapp/: %v", err)
	}
	return node
}

// Build compiles the core's command (a package path or directory) for
// GOOS=js GOARCH=wasm into the test's temporary directory.
func Build(t *testing.T, pkg string) string {
	t.Helper()
	wasm := filepath.Join(t.TempDir(), "core.wasm")
	build := exec.Command("go", "build", "-o", wasm, pkg)
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the WebAssembly core: %v\n%s", err, out)
	}
	return wasm
}

// ExecJS is the wasm_exec.js loader of the Go release that built the core.
func ExecJS(t *testing.T) string {
	t.Helper()
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js")
}
