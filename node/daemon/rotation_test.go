package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// epochRecords counts the epoch records, effective or not, in a state.
func epochRecords(st *directory.State) int {
	n := 0
	for _, p := range st.Proposals() {
		if p.Type == directory.TypeEpoch {
			n++
		}
	}
	return n
}

// A reader's node publishes twenty self-revocations of throwaway keys (a
// valid record anyone can make). None of those keys could read anything,
// so the steward's daemon does not rotate: no new epoch record anywhere.
// (It used to rotate once per revocation: twenty epoch records on every
// node, a keystore save each.)
func TestRevocationsOfStrangersDoNotRotate(t *testing.T) {
	svc := &directory.Service{Name: "Refugio temporal", Status: "active", Categories: []string{"shelter"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "r@example.org"}}}
	steward, org, reader := readerNetwork(t, "Red", "Colectivo", "refugio", svc, "refugio")
	ctx := context.Background()
	st := steward.Node().State()
	before := epochRecords(st)
	var keys []directory.PublicKey
	for range 20 {
		id, err := directory.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		r, err := directory.NewRecord(st.Network(), &directory.Revocation{Key: id.Public(), Reason: "desechable", Issued: time.Now().Unix()}, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reader.Node().Publish(ctx, r); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, id.Public())
	}
	waitUntil(t, 30*time.Second, "the twenty revocations on the steward's node", func() bool {
		if got := epochRecords(st); got != before {
			t.Fatalf("the steward's node holds %d epoch records, %d before the revocations of keys that could read nothing", got, before)
		}
		for _, k := range keys {
			if !st.IsRevoked(k) {
				return false
			}
		}
		return true
	})
	// Past the coalescing window, with room for a rotation to be made and
	// to travel.
	time.Sleep(rotationWindow + 3*time.Second)
	for name, d := range map[string]*Daemon{"steward": steward, "org": org, "reader": reader} {
		s := d.Node().State()
		if got := epochRecords(s); got != before || s.CurrentEpoch() != 1 {
			t.Fatalf("%s's node: %d epoch records (%d before), current epoch %d: revocations of keys that could read nothing caused a rotation", name, got, before, s.CurrentEpoch())
		}
	}
}

// Three members and readers that hold a package in the current epoch are
// revoked by the steward within a second. The steward's daemon rotates
// once: one new epoch, sealed to nobody revoked; the remaining member's
// node adopts it, and the revoked reader's node, still connected, does not
// get it.
func TestRevocationsInAWindowRotateOnce(t *testing.T) {
	svc := &directory.Service{Name: "Asesoría jurídica", Status: "active", Categories: []string{"legal"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "a@example.org"}}}
	steward, org, reader := readerNetwork(t, "Red", "Colectivo", "asesoria", svc, "asesoria")
	ctx := context.Background()
	st := steward.Node().State()
	// Two more readers, vouched by the organization, without a node.
	var others []*directory.Identity
	for range 2 {
		id, err := directory.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		g, err := directory.NewRecord(st.Network(), &directory.Reader{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Issued: time.Now().Unix()}, org.me())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := org.Node().Publish(ctx, g); err != nil {
			t.Fatal(err)
		}
		others = append(others, id)
	}
	waitUntil(t, 15*time.Second, "the readers on the steward's node", func() bool {
		return st.IsReader(others[0].Public()) && st.IsReader(others[1].Public())
	})
	// A rotation by hand, so every one of them holds a package.
	if _, err := steward.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "epoch 2 on the organization's and the reader's nodes", func() bool {
		return org.Node().Status().KeyEpoch == 2 && reader.Node().Status().KeyEpoch == 2
	})
	cur := st.Epochs()[len(st.Epochs())-1]
	revoked := []directory.PublicKey{reader.me().Public(), others[0].Public(), others[1].Public()}
	for _, k := range revoked {
		if !hasPackage(cur, k) {
			t.Fatal("a reader has no package in epoch 2; the test proves nothing")
		}
	}
	before := epochRecords(st)
	for _, k := range revoked {
		if _, err := steward.Propose(ctx, api.ProposeRequest{Kind: "revoke", Key: k.Hex(), Reason: "dispositivo incautado"}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 15*time.Second, "a rotation after the revocations", func() bool { return st.CurrentEpoch() == 3 })
	time.Sleep(rotationWindow + 3*time.Second)
	if got := epochRecords(st); got != before+1 || st.CurrentEpoch() != 3 {
		t.Fatalf("three revocations in a window gave %d new epoch records (current epoch %d), want 1", got-before, st.CurrentEpoch())
	}
	e := st.Epochs()[len(st.Epochs())-1]
	for _, k := range revoked {
		if hasPackage(e, k) {
			t.Fatalf("the rotation seals the new key to revoked %s", directory.Fingerprint(k))
		}
	}
	waitUntil(t, 15*time.Second, "the organization's node to adopt epoch 3", func() bool { return org.Node().Status().KeyEpoch == 3 })
	time.Sleep(time.Second)
	if got := reader.Node().Status().KeyEpoch; got != 2 {
		t.Fatalf("the revoked reader's node holds the key of epoch %d", got)
	}
}
