package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
)

// wipeTestHome makes a home in-process, with a keystore to destroy.
func wipeTestHome(t *testing.T) daemon.Home {
	t.Helper()
	h := daemon.Home{Dir: filepath.Join(t.TempDir(), "home")}
	if _, err := daemon.Init(h, daemon.InitOptions{Name: "Prueba", Passphrase: "correct horse battery", WorkFactor: 10, Local: true}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestWipeWhenAnotherDaemonHoldsThePort: the API port answers status (no
// token needed) but refuses the wipe, as another home's daemon does. The
// files are still destroyed, and the command says a daemon may still run
// (found in review, session 39).
func TestWipeWhenAnotherDaemonHoldsThePort(t *testing.T) {
	h := wipeTestHome(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/wipe" {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"wrong API token"}`))
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := wipeHome(context.Background(), h, &api.Client{Base: srv.URL, Token: "this-home"}, &out)
	mustBeGone(t, h)
	if !strings.Contains(out.String(), "Wiped:") {
		t.Errorf("no word that the files are wiped: %q", out.String())
	}
	if err == nil || !strings.Contains(err.Error(), "wrong API token") || !strings.Contains(err.Error(), "stop it") {
		t.Errorf("error %v does not say the daemon refused and may still run", err)
	}
}

// TestWipeWhenTheDaemonKeepsAnswering: a process that says it wiped but
// keeps answering status no longer stops the local wipe.
func TestWipeWhenTheDaemonKeepsAnswering(t *testing.T) {
	old := daemonGoneTimeout
	daemonGoneTimeout = 300 * time.Millisecond
	defer func() { daemonGoneTimeout = old }()
	h := wipeTestHome(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := wipeHome(context.Background(), h, &api.Client{Base: srv.URL, Token: "this-home"}, &out)
	mustBeGone(t, h)
	if err == nil || !strings.Contains(err.Error(), "still answers") {
		t.Errorf("error %v does not say the daemon still answers", err)
	}
}

// TestWipeWithNoDaemon: nothing on the port, the files go, exit 0.
func TestWipeWithNoDaemon(t *testing.T) {
	h := wipeTestHome(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	var out bytes.Buffer
	if err := wipeHome(context.Background(), h, &api.Client{Base: base}, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Fatal("the home is still there")
	}
	if !strings.Contains(out.String(), "no daemon was running") {
		t.Errorf("output %q", out.String())
	}
}

// mustBeGone fails the test if anything of home h is left.
func mustBeGone(t *testing.T, h daemon.Home) {
	t.Helper()
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(h.Dir)
		t.Fatalf("the home is still there: %v", entries)
	}
}
