package daemon

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// A reader admitted while the current epoch was current holds its key from
// the invite but has no package in it. Whether its revocation calls for a
// rotation used to be known only to the steward's daemon that saw it
// admitted, in memory: a daemon restarted before the rotation (within the
// window, or while a failed rotation was retried) never rotated, and the
// revoked device kept reading everything published after (found in review,
// session 40). The tests restart the steward's daemon right after the
// revocation and wait for the new epoch.

func TestStewardsRevocationRotatesAfterARestart(t *testing.T) {
	steward, org, reader := restartNetwork(t)
	rk := reader.me().Public()
	if _, err := steward.Propose(context.Background(), api.ProposeRequest{Kind: "revoke", Key: rk.Hex(), Reason: "dispositivo incautado"}); err != nil {
		t.Fatal(err)
	}
	if !steward.Node().State().IsRevoked(rk) {
		t.Fatal("the 1-of-1 revocation is not in effect on the steward's node")
	}
	waitForRotationAfterRestart(t, steward, org, reader)
}

// A reader's revocation of its own key (a seized device's revocation
// certificate) dropped its grant, so the restarted steward's node refused
// the revocation as that of a key the network does not know: the key was
// not revoked there, and the read key never rotated (found by the lead
// engineer).
func TestReadersOwnRevocationRotatesAfterARestart(t *testing.T) {
	steward, org, reader := restartNetwork(t)
	rk := reader.me().Public()
	// The steward's daemon must have seen the reader able to read the
	// current epoch, as it would have long before a device is seized.
	waitUntil(t, 30*time.Second, "the steward's daemon noting the reader in rotation-watch.cbor", func() bool {
		data, err := os.ReadFile(steward.home.path("rotation-watch.cbor"))
		var f watchFile
		if err != nil || codeDec.Unmarshal(data, &f) != nil {
			return false
		}
		return slices.Contains(f.Readers, rk)
	})
	if err := reader.RevokeSelf(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the reader's own revocation reaching the steward", func() bool {
		return steward.Node().State().IsRevoked(rk)
	})
	waitForRotationAfterRestart(t, steward, org, reader)
}

func restartNetwork(t *testing.T) (steward, org, reader *Daemon) {
	t.Helper()
	svc := &directory.Service{Name: "Acompañamiento legal", Status: "active", Categories: []string{"legal"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "l@example.org"}}}
	steward, org, reader = readerNetwork(t, "Red", "Colectivo", "legal", svc, "acompanamiento")
	st := steward.Node().State()
	if st.HasPackage(st.Epochs()[len(st.Epochs())-1], reader.me().Public()) {
		t.Fatal("the reader has a package in the current epoch; the test wants one admitted after it")
	}
	return steward, org, reader
}

func waitForRotationAfterRestart(t *testing.T, steward, org, reader *Daemon) {
	t.Helper()
	home := steward.home
	steward.Close()
	again, err := Start(context.Background(), Options{Home: home, Passphrase: testPassphrase, WorkFactor: 10,
		Logger: testLogger("steward-again"), SyncInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	st := again.Node().State()
	if !st.IsRevoked(reader.me().Public()) {
		t.Fatal("the restarted steward's node lost the revocation")
	}
	limit := rotationWindow + 15*time.Second
	for deadline := time.Now().Add(limit); st.CurrentEpoch() < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			_, held := reader.Node().Keyring()[org.Node().Status().KeyEpoch]
			t.Fatalf("the restarted steward's daemon never rotated: epoch %d after %s; the organization seals under epoch %d, whose key the revoked reader holds: %v",
				st.CurrentEpoch(), limit, org.Node().Status().KeyEpoch, held)
		}
	}
	// The organization's next entry is sealed under a key the revoked
	// reader does not hold. The restarted daemon listens on new ports,
	// which the organization's node has not heard of, and the old
	// daemon's QUIC connection may look alive to it until its idle
	// timeout: the test dials the new addresses for it (again if a loaded
	// machine lets the admission time out), as a node dials a steward's
	// published address.
	h := again.Node().Host()
	onNewAddrs := func() bool {
		for _, c := range org.Node().Host().Network().ConnsToPeer(h.ID()) {
			for _, a := range h.Addrs() {
				if c.RemoteMultiaddr().Equal(a) {
					return true
				}
			}
		}
		return false
	}
	waitUntil(t, 30*time.Second, "the organization sealing under epoch 2", func() bool {
		if !onNewAddrs() {
			org.Node().Host().Network().ClosePeer(h.ID())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			org.Node().Host().Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
			cancel()
		}
		return org.Node().Status().KeyEpoch >= 2
	})
	if _, held := reader.Node().Keyring()[org.Node().Status().KeyEpoch]; held {
		t.Fatal("the revoked reader holds the key the organization now seals under")
	}
}
