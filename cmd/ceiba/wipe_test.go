package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestWipeWithTheDaemonRunning: "ceiba wipe --yes" while the daemon runs
// is one step: the daemon destroys the keys and the copy and exits, and
// the command says so only once it is done (issue 18).
func TestWipeWithTheDaemonRunning(t *testing.T) {
	home, apiPort := initHome(t)
	_, exited := startDaemonProcess(t, home, apiPort)
	if r := ceiba(t, testEnv, "--home", home, "network", "create", "--name", "Red de prueba"); r.code != 0 {
		t.Fatalf("network create: %s", r.stderr)
	}
	r := ceiba(t, testEnv, "--home", home, "wipe", "--yes")
	if r.code != 0 {
		t.Fatalf("wipe --yes with the daemon running: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Wiped: the daemon is stopped") {
		t.Fatalf("wipe does not say it is done: %q", r.stderr)
	}
	// The daemon exits by itself: nothing here stops it.
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the daemon process still runs a minute after the wipe")
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(home)
		t.Fatalf("the home is still there after the wipe: %v (%v)", entries, err)
	}
}
