package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/internal/wasmtest"
	"github.com/ceiba-network/ceiba/node/api"
)

// Issue 16: a reader's phone joins as its own peer. An independent
// implementation of the networking (js-libp2p 3 over TCP, run by Node.js)
// carries the requests that the web app's core (Go's directory compiled to
// WebAssembly) builds and opens, against real daemons made with the
// README's commands: the reader key is made inside the core, the
// organization's node admits it, and the welcome opens to the network the
// daemons are in, at its epoch, with the read key. The code, once spent,
// is refused with the inviting node's reason. Connecting again, the phone
// and the organization's node prove their keys to each other (admission,
// both ways), and the node keeps the connection past a guest's window.
func TestWebappReaderPeer(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/libp2p/package.json")
	_, org, _, _ := stewardAndMember(t)
	var inv api.Invite
	if err := json.Unmarshal([]byte(mustRun(t, org, "--json", "invite", "create", "--role", "reader", "--expires", "1h")), &inv); err != nil {
		t.Fatal(err)
	}
	before := daemonStatus(t, org)

	wasm := wasmtest.Build(t, "../../webapp/core/wasm")
	cmd := exec.Command(nodeJS, "../../webapp/test/peer.mjs", wasmtest.ExecJS(t), wasm, inv.Code, "una frase de paso larga")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("the JavaScript peer failed: %v\n%s", err, stderr.String())
	}
	var out struct {
		Fingerprint string
		Welcome     struct{ Network, Role string }
		Status      struct {
			Network string
			Epoch   uint64
			KeyHeld bool `json:"key_held"`
		}
		Again    *string
		Admitted struct {
			Role, Fingerprint, Error string
		}
		ConnectedAfter12s bool
		Error             string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("the JavaScript peer's output is not JSON: %v\n%s", err, raw)
	}
	if out.Error != "" {
		t.Fatalf("the JavaScript peer could not redeem the invite: %s", out.Error)
	}
	if out.Welcome.Network != before.Network || out.Welcome.Role != "reader" {
		t.Errorf("welcome %+v, want network %s as reader", out.Welcome, before.Network)
	}
	if out.Status.Epoch != before.Epoch || !out.Status.KeyHeld {
		t.Errorf("the phone's view %+v: want epoch %d with its read key", out.Status, before.Epoch)
	}
	if out.Again == nil || !strings.Contains(*out.Again, "refused") {
		t.Errorf("redeeming the spent code again: %v, want the inviting node's refusal", out.Again)
	}
	if out.Admitted.Error != "" || out.Admitted.Fingerprint != before.Fingerprint {
		t.Errorf("admission with the organization's node: %+v, want its key %s proven", out.Admitted, before.Fingerprint)
	}
	if !out.ConnectedAfter12s {
		t.Error("the organization's node cut the admitted phone after the guest window")
	}
	waitUntil(t, 30*time.Second, "the organization to count the new reader", func() bool {
		return daemonStatus(t, org).Counts.Readers == before.Counts.Readers+1
	})
}
