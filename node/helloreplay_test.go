package node

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// One admitted reader floods a node with hellos from several peer IDs.
// Hellos refused for the session budget used to be remembered in the
// replay cache all the same, and a full cache refused every key's hello:
// the reader locked every member out of the node's sync. Found in review
// (session 39). The cache is shrunk so that the reader's first burst
// alone would fill it.
func TestHelloFloodDoesNotLockOutOthers(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.SyncInterval = time.Hour
	a := startNode(t, cfg)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Vouch(t, org, reader))
	const cacheMax = SyncSessionsBurst / 2
	a.sync.replays.mu.Lock()
	a.sync.replays.max = cacheMax
	a.sync.replays.mu.Unlock()
	held := func() int {
		a.sync.replays.mu.Lock()
		defer a.sync.replays.mu.Unlock()
		return a.sync.replays.total
	}

	sent := 0
	buf := make([]byte, 64)
	for range 3 {
		h := hostileHost(t)
		admitAs(h, nw.ID, reader)
		connectTo(t, h, a)
		for range 2 * SyncSessionsBurst {
			st, err := h.NewStream(t.Context(), a.Host().ID(), SyncProtocol)
			if err != nil {
				continue
			}
			st.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := st.Write(insiderHello(reader, nw, h.ID(), a.Host().ID(), 1)); err == nil {
				st.Read(buf) // the helloAck, or the reset of a refusal
			}
			st.Reset()
			sent++
		}
	}
	t.Logf("%d hellos from one reader key; replay cache holds %d (max %d)", sent, held(), cacheMax)
	if held() < cacheMax {
		t.Fatalf("setup: the reader's hellos did not fill the replay cache (%d of %d)", held(), cacheMax)
	}

	b := startNode(t, testConfig(t, nw, nw.Stewards[1], t.TempDir()))
	connectTo(t, b.Host(), a)
	var err error
	for range 3 {
		if _, _, err = b.sync.session(a.Host().ID()); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Errorf("after one reader key sent %d hellos, a steward's node cannot sync with the node: %v", sent, err)
	}
}

// A key is refused once it holds as many live entries as its session
// budget lets it open; other keys are not.
func TestHelloReplaysPerKeyShare(t *testing.T) {
	var r helloReplays
	k1, k2 := dirtest.MustIdentity(t).Public(), dirtest.MustIdentity(t).Public()
	nonce := func() []byte {
		b := make([]byte, helloNonceLen)
		rand.Read(b)
		return b
	}
	for i := range 5 {
		if !r.fresh(k1, nonce(), time.Minute, 5) {
			t.Fatalf("hello %d of the key's 5 refused", i)
		}
	}
	if r.fresh(k1, nonce(), time.Minute, 5) {
		t.Error("a key past its share was let into the replay cache")
	}
	if !r.fresh(k2, nonce(), time.Minute, 5) {
		t.Error("another key was refused because one key holds its share")
	}
	n := nonce()
	if !r.fresh(k2, n, time.Minute, 5) || r.fresh(k2, n, time.Minute, 5) {
		t.Error("a replayed nonce was not refused")
	}
}
