package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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
// Then the phone syncs: the organization's entry arrives and is found by
// a search in the core; a second sync brings nothing new.
func TestWebappReaderPeer(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/libp2p/package.json")
	_, org, _, inv := orgWithReaderInvite(t)
	before := daemonStatus(t, org)

	wasm := wasmtest.Build(t, "../../webapp/core/wasm")
	cmd := exec.Command(nodeJS, "../../webapp/test/peer.mjs", wasmtest.ExecJS(t), wasm, inv.Code, "una frase de paso larga", "asilo")
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
		Pulled            int
		PulledAgain       int
		AfterSync         struct{ Waiting int }
		Results           []struct{ Key string }
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
	if out.Pulled == 0 || len(out.Results) != 1 || !strings.HasSuffix(out.Results[0].Key, "/asesoria-juridica") {
		t.Errorf("sync brought %d records and a search for \"asilo\" found %+v: want the organization's entry", out.Pulled, out.Results)
	}
	if out.PulledAgain != 0 || out.AfterSync.Waiting != 0 {
		t.Errorf("a second sync brought %d records (%d waiting): want nothing new", out.PulledAgain, out.AfterSync.Waiting)
	}
	waitUntil(t, 30*time.Second, "the organization to count the new reader", func() bool {
		return daemonStatus(t, org).Counts.Readers == before.Counts.Readers+1
	})
}

// orgWithReaderInvite starts a steward's and an organization's daemons
// (stewardAndMember), publishes the entry template ("Asesoría jurídica")
// as the organization, and has it create a reader invite for a phone.
func orgWithReaderInvite(t *testing.T) (steward, org string, stopOrg func(), inv api.Invite) {
	t.Helper()
	steward, org, _, stopOrg = stewardAndMember(t)
	publishEntry(t, org, "", "")
	return steward, org, stopOrg, readerInvite(t, org)
}

// readerInvite has home's daemon create a reader invite.
func readerInvite(t *testing.T, home string) (inv api.Invite) {
	t.Helper()
	if err := json.Unmarshal([]byte(mustRun(t, home, "--json", "invite", "create", "--role", "reader", "--expires", "1h")), &inv); err != nil {
		t.Fatal(err)
	}
	return inv
}

// publishEntry publishes the entry template as home's organization, under
// id and with the service's name replaced when they are not empty.
func publishEntry(t *testing.T, home, id, name string) {
	t.Helper()
	yaml := mustRun(t, home, "entry", "template")
	if id != "" {
		yaml = strings.Replace(yaml, "id: asesoria-juridica", "id: "+id, 1)
		yaml = strings.Replace(yaml, "name: Asesoría jurídica para personas defensoras", "name: "+name, 1)
	}
	f := filepath.Join(t.TempDir(), "entrada.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, home, "entry", "publish", f)
}
