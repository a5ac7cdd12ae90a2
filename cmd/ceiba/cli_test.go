package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/internal/lockedbuf"
	"github.com/ceiba-network/ceiba/internal/netnstest"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/demo"
)

// The tests drive the real binary, built once.
var binary string

func TestMain(m *testing.M) {
	if netnstest.InHelper() {
		// A helper inside a network namespace (nat_test.go) needs no
		// binary of its own, and building one per helper would be slow.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ceiba-cli-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ceiba")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("building ceiba: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func ceiba(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// mustFail checks the promise for bad input: non-zero exit, one line on
// stderr that contains want.
func mustFail(t *testing.T, r result, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit 0, want failure; stdout %q", r.stdout)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if strings.Contains(msg, "\n") {
		t.Fatalf("error is %d lines, want one:\n%s", strings.Count(msg, "\n")+1, msg)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("error %q does not say %q", msg, want)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

var testEnv = []string{"CEIBA_PASSPHRASE=correct horse battery", "CEIBA_KDF_WORK_FACTOR=10"}

func initHome(t *testing.T) (home, apiPort string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "home")
	apiPort = freePort(t)
	r := ceiba(t, testEnv, "--home", home, "init", "--local", "--name", "Prueba", "--api-port", apiPort, "--p2p-port", "0")
	if r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	if !strings.Contains(r.stdout, "fingerprint") {
		t.Fatalf("init did not print the fingerprint: %q", r.stdout)
	}
	return home, apiPort
}

// mustRun runs ceiba with the home and args, and fails the test if it fails.
func mustRun(t *testing.T, home string, args ...string) string {
	t.Helper()
	r := ceiba(t, testEnv, append([]string{"--home", home}, args...)...)
	if r.code != 0 {
		t.Fatalf("ceiba %s: %s", strings.Join(args, " "), r.stderr)
	}
	return r.stdout
}

// stewardAndMember starts a steward's daemon with a new network and an
// organization's daemon admitted to it by a member invite, as the README
// does it; stopOrg stops the organization's daemon.
func stewardAndMember(t *testing.T) (steward, org, orgAPI string, stopOrg func()) {
	t.Helper()
	steward, stewardAPI := initHome(t)
	startDaemon(t, steward, stewardAPI)
	org, orgAPI = initHome(t)
	stopOrg = startDaemon(t, org, orgAPI)
	mustRun(t, steward, "network", "create", "--name", "Red de prueba")
	var inv api.Invite
	if err := json.Unmarshal([]byte(mustRun(t, steward, "--json", "invite", "create", "--role", "member", "--expires", "1h")), &inv); err != nil {
		t.Fatal(err)
	}
	mustRun(t, org, "invite", "accept", inv.Code, "--name", "Colectivo Ejemplo")
	waitUntil(t, time.Minute, "the organization's admission", func() bool { return daemonStatus(t, org).Role == "member" })
	return steward, org, orgAPI, stopOrg
}

// daemonStatus is `ceiba --json status` against the home's daemon.
func daemonStatus(t *testing.T, home string) api.Status {
	t.Helper()
	var s api.Status
	if err := json.Unmarshal([]byte(mustRun(t, home, "--json", "status")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			files[p] = string(b)
		}
		return nil
	})
	return files
}

func TestBadInputWithoutDaemon(t *testing.T) {
	home, _ := initHome(t)
	before := snapshot(t, home)

	mustFail(t, ceiba(t, testEnv, "--home", home, "status", "--bogus"), "unknown flag: --bogus")
	mustFail(t, ceiba(t, testEnv, "--home", home, "status"), "no Ceiba daemon is running")
	mustFail(t, ceiba(t, testEnv, "--home", filepath.Join(t.TempDir(), "none"), "status"), "run \"ceiba init\" first")
	mustFail(t, ceiba(t, testEnv, "--home", home, "init"), "already holds keys")
	mustFail(t, ceiba(t, []string{"CEIBA_PASSPHRASE=short", "CEIBA_KDF_WORK_FACTOR=10"}, "--home", filepath.Join(t.TempDir(), "new"), "init"), "at least 8")
	mustFail(t, ceiba(t, testEnv, "--home", home, "show"), "needs an entry id")

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	mustFail(t, ceiba(t, testEnv, "--home", home, "entry", "publish", write("bad.yaml", "id: [unclosed")), "not valid YAML or JSON")
	mustFail(t, ceiba(t, testEnv, "--home", home, "entry", "publish", write("typo.yaml", "id: x\nservice:\n  nmae: X\n")), "unknown field \"nmae\"")
	mustFail(t, ceiba(t, testEnv, "--home", home, "entry", "publish", write("cat.yaml", `id: x
service:
  name: X
  status: active
  categories: [astrology]
  languages: [es]
  contacts: [{kind: email, value: a@b.c}]
`)), "categories: \"astrology\" is not one of")
	mustFail(t, ceiba(t, testEnv, "--home", home, "entry", "publish", filepath.Join(dir, "missing.yaml")), "no such file")

	wrong := []string{"CEIBA_PASSPHRASE=wrong", "CEIBA_KDF_WORK_FACTOR=10"}
	mustFail(t, ceiba(t, wrong, "--home", home, "daemon"), "wrong passphrase")
	mustFail(t, ceiba(t, []string{"CEIBA_PASSPHRASE="}, "--home", home, "daemon"), "no passphrase")

	if after := snapshot(t, home); !equalMaps(before, after) {
		t.Fatal("a refused command changed the home")
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// startDaemon starts "ceiba daemon" for home and waits for its API. The
// returned stop interrupts it and waits for it to exit; it also runs at
// the test's end.
func startDaemon(t *testing.T, home, apiPort string) (stop func()) {
	stop, _ = startDaemonProcess(t, home, apiPort)
	return stop
}

// startDaemonProcess is startDaemon that also returns a channel closed
// when the process has exited, by itself or by stop.
func startDaemonProcess(t *testing.T, home, apiPort string) (stop func(), exited <-chan struct{}) {
	t.Helper()
	stop, exited, _ = startDaemonLogged(t, home, apiPort)
	return stop, exited
}

// startDaemonLogged is startDaemonProcess that also returns the daemon's
// log (its standard error), to read once the process has exited.
func startDaemonLogged(t *testing.T, home, apiPort string) (stop func(), exited <-chan struct{}, logs *lockedbuf.Buffer) {
	t.Helper()
	return startDaemonEnv(t, testEnv, home, apiPort)
}

// startDaemonEnv is startDaemonLogged with env instead of testEnv (another
// passphrase).
func startDaemonEnv(t *testing.T, env []string, home, apiPort string) (stop func(), exited <-chan struct{}, logs *lockedbuf.Buffer) {
	t.Helper()
	logs = &lockedbuf.Buffer{}
	cmd := exec.Command(binary, "--home", home, "daemon")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		<-done
	}
	t.Cleanup(stop)
	// A start that repairs a damaged store, under -race on a busy
	// machine, can take far longer than an ordinary one; a daemon that
	// exits is reported at once.
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://127.0.0.1:" + apiPort + "/v1/status")
		if err == nil {
			resp.Body.Close()
			return stop, done, logs
		}
		select {
		case <-done:
			t.Fatalf("daemon exited before it answered: %s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("daemon did not start: %s", logs.String())
	return nil, nil, nil
}

func TestBadInputWithDaemon(t *testing.T) {
	home, apiPort := initHome(t)
	startDaemon(t, home, apiPort)

	mustFail(t, ceiba(t, testEnv, "--home", home, "invite", "accept", "hello"), "not a Ceiba invite code")
	mustFail(t, ceiba(t, testEnv, "--home", home, "invite", "accept", "ceiba-invite:@@@"), "damaged")
	mustFail(t, ceiba(t, testEnv, "--home", home, "invite", "create", "--role", "reader"), "has not joined a network")
	mustFail(t, ceiba(t, testEnv, "--home", home, "search", "x"), "has not joined a network")
	mustFail(t, ceiba(t, testEnv, "--home", home, "network", "create"), "give the network a name")

	base := "http://127.0.0.1:" + apiPort
	post := func(host, token string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/rotate", nil)
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set("X-Ceiba-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("", ""); got != http.StatusUnauthorized {
		t.Errorf("write without token: status %d, want 401", got)
	}
	if got := post("", "not-the-token"); got != http.StatusForbidden {
		t.Errorf("write with a wrong token: status %d, want 403", got)
	}
	if got := post("evil.example:"+apiPort, ""); got != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host header: status %d, want 421", got)
	}
}

// TestStoryAcrossProcesses runs the whole story through the CLI with
// separate daemons: a 2-of-3 network, organizations admitted, a reader,
// publish, search everywhere, a revocation approved by two stewards that
// removes the organization's entries from every node, and a rotation the
// revoked key cannot follow. The demo checks each step and fails otherwise.
func TestStoryAcrossProcesses(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, demo.Options{Binary: binary, Readers: 1, Dir: t.TempDir(), Out: &out, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("nodes %d; search everywhere %s; revocation everywhere %s; rotation everywhere %s",
		res.Nodes, res.SearchEverywhere, res.RevokeEverywhere, res.RotateEverywhere)
}

// Finding 5 of issue 20: the revocation certificate is encrypted with the
// passphrase, "ceiba revoke --cert" asks for it, and "ceiba init" says
// to keep a copy off the device.
func TestRevocationCertificateThroughTheCLI(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	apiPort := freePort(t)
	r := ceiba(t, testEnv, "--home", home, "init", "--local", "--name", "Prueba", "--api-port", apiPort, "--p2p-port", "0")
	if r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	if !strings.Contains(r.stdout, "revocation.cert") || !strings.Contains(r.stdout, "somewhere else") {
		t.Fatalf("init does not tell where the revocation certificate goes and to copy it off the device: %q", r.stdout)
	}
	startDaemon(t, home, apiPort)
	if r := ceiba(t, testEnv, "--home", home, "network", "create", "--name", "Red"); r.code != 0 {
		t.Fatalf("network create: %s", r.stderr)
	}
	cert := filepath.Join(home, "revocation.cert")
	data, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("age-encryption.org/")) {
		t.Fatal("revocation.cert is not encrypted")
	}
	mustFail(t, ceiba(t, []string{"CEIBA_PASSPHRASE=not the passphrase"}, "--home", home, "revoke", "--cert", cert), "wrong passphrase")
	r = ceiba(t, testEnv, "--home", home, "revoke", "--cert", cert)
	if r.code != 0 || !strings.Contains(r.stdout, "Revocation published") {
		t.Fatalf("revoke --cert with the passphrase: %s %s", r.stdout, r.stderr)
	}
	r = ceiba(t, testEnv, "--home", home, "--json", "status")
	if !strings.Contains(r.stdout, `"revoked"`) {
		t.Fatalf("after revoke --cert, status: %s", r.stdout)
	}
}

// Issue 14 with real daemons: one steward, one organization and 60 readers,
// each a ceiba process driven through the CLI. The steward revokes one
// reader, its daemon rotates the read key alone, the organization
// publishes afterwards; the last reader finds the new entry and the
// revoked reader does not (demo.RunRotation checks each step). It also
// reports the daemons' resident memory.
//
// 62 daemons take about 4 minutes on two cores and 3.5 GiB of memory, and
// would compete with every other package's tests in a parallel go test
// ./...: it runs only with CEIBA_DAEMON_TESTS=1, which make test-daemons
// sets.
func TestRotationWithSixtyReaderDaemons(t *testing.T) {
	if os.Getenv("CEIBA_DAEMON_TESTS") == "" {
		t.Skip("62 daemon processes for minutes: set CEIBA_DAEMON_TESTS=1 (make test-daemons)")
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := demo.RunRotation(ctx, demo.Options{Binary: binary, Readers: 60, Dir: t.TempDir(), Out: &out, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("%d daemons; every remaining node holds the new key %s after the revocation; the last reader found the new entry %s after it was published",
		res.Nodes, res.RotateAll.Round(time.Millisecond), res.FoundByLast.Round(time.Millisecond))
	t.Logf("resident memory: largest daemon %.0f MiB (%s), steward %.0f MiB, median reader %.0f MiB, all daemons %.0f MiB",
		float64(res.MaxRSS)/(1<<20), res.MaxRSSName, float64(res.StewardRSS)/(1<<20), float64(res.ReaderRSSMedian)/(1<<20), float64(res.TotalRSS)/(1<<20))
}
