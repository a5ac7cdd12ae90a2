package main

import (
	"crypto/rand"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
)

// silentNode starts a host that accepts streams of proto and never reads
// or answers them, and returns an invite code naming it (its token is
// random: nothing checks it) and the streams it holds.
func silentNode(t *testing.T, proto protocol.ID) (code string, held chan network.Stream) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	held = make(chan network.Stream, 8)
	h.SetStreamHandler(proto, func(s network.Stream) { held <- s })
	c := &directory.InviteCode{Peer: []byte(h.ID()), Token: make([]byte, directory.InviteTokenSize)}
	rand.Read(c.Token)
	for _, a := range h.Addrs() {
		c.Addrs = append(c.Addrs, a.Bytes())
	}
	return c.String(), held
}

type silentOutcome struct {
	Settled bool
	Outcome string
	Ms      int
}

// runSilentNode runs webapp/test/silent-node.mjs with args after the core.
func runSilentNode(t *testing.T, nodeJS string, args ...string) silentOutcome {
	t.Helper()
	wasm := wasmtest.Build(t, "../../webapp/core/wasm")
	cmd := exec.Command(nodeJS, append([]string{"../../webapp/test/silent-node.mjs", wasmtest.ExecJS(t), wasm}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("the JavaScript peer failed: %v\n%s", err, stderr.String())
	}
	var out silentOutcome
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	return out
}

// Anyone can make an invite code (a forged QR on a poster, a message): it
// names a peer, addresses and a token. The host it names here accepts the
// invite stream and never answers. The web app's join must give up within
// its 30 s deadline (invite.js) with an error the phone shows, rather than
// stay on "redeeming" for ever: the deadline used to cover only the dial
// and the stream's opening, not the wait for the answer. The test gives it
// 40 s.
func TestWebappJoinGivesUpOnASilentInviter(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/libp2p/package.json")
	code, held := silentNode(t, "/ceiba/invite/2.0.0")
	out := runSilentNode(t, nodeJS, "invite", code, "40000")
	if len(held) == 0 {
		t.Fatal("the web app never opened the invite stream")
	}
	if !out.Settled {
		t.Fatalf("redeeming a code whose node stays silent had neither failed nor succeeded after %d ms (invite.js promises 30 s)", out.Ms)
	}
	if !strings.Contains(out.Outcome, "did not answer within 30 s") {
		t.Fatalf("redeeming a code whose node stays silent ended with %q, want it to say the node did not answer", out.Outcome)
	}
	t.Logf("settled after %d ms: %s", out.Ms, out.Outcome)
}

// A joined phone's sync session with a peer that accepts the sync stream
// and never answers ends within the web app's 60 s deadline (sync.js),
// rather than hold the phone's sync (and every later one, which waits for
// it) for ever. The test gives it 70 s.
func TestWebappSyncGivesUpOnASilentNode(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/libp2p/package.json")
	_, _, _, inv := orgWithReaderInvite(t)
	code, held := silentNode(t, "/ceiba/sync/2.0.0")
	out := runSilentNode(t, nodeJS, "sync", code, "70000", inv.Code)
	if len(held) == 0 {
		t.Fatal("the web app never opened the sync stream")
	}
	if !out.Settled {
		t.Fatalf("a sync session with a silent node had neither failed nor succeeded after %d ms (sync.js promises 60 s)", out.Ms)
	}
	if !strings.Contains(out.Outcome, "did not finish the sync session within 60 s") {
		t.Fatalf("a sync session with a silent node ended with %q, want it to say the node did not finish", out.Outcome)
	}
	t.Logf("settled after %d ms: %s", out.Ms, out.Outcome)
}
