package node

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

func TestEventsSlowSubscriberIsToldWhatItMissed(t *testing.T) {
	b := newBroker()
	slow, cancelSlow := b.subscribe()
	fast, cancelFast := b.subscribe()
	defer cancelFast()
	for i := range eventBuffer + 10 {
		b.publish(Event{Kind: EventRecord, Pulled: i})
		<-fast // a subscriber that keeps up loses nothing
	}
	for range eventBuffer {
		if ev := <-slow; ev.Kind != EventRecord {
			t.Fatalf("got %s before the queue drained", ev.Kind)
		}
	}
	b.publish(Event{Kind: EventKey, Epoch: 2})
	if ev := <-slow; ev.Kind != EventLagged || ev.Missed != 10 {
		t.Fatalf("after draining: %+v, want lagged with 10 missed", ev)
	}
	if ev := <-slow; ev.Kind != EventKey {
		t.Fatalf("after the lag notice: %+v, want the next event", ev)
	}
	cancelSlow()
	cancelSlow() // idempotent
	if _, ok := <-slow; ok {
		t.Fatal("channel open after cancel")
	}
	b.close()
	for range fast { // what was queued, then the close
	}
	if ch, _ := b.subscribe(); ch != nil {
		if _, ok := <-ch; ok {
			t.Fatal("subscribing to a closed node gives an open channel")
		}
	}
}

func randomHashes(n int) []directory.Hash {
	hs := make([]directory.Hash, n)
	for i := range hs {
		rand.Read(hs[i][:])
	}
	return hs
}

func TestDigestLocalizesDifferences(t *testing.T) {
	hs := randomHashes(2000)
	a := newDigest(append([]directory.Hash(nil), hs...))
	b := newDigest(append([]directory.Hash(nil), hs...))
	if a.Root != b.Root {
		t.Fatal("equal sets, different roots")
	}
	extra := randomHashes(1)[0]
	c := newDigest(append(append([]directory.Hash(nil), hs...), extra))
	if c.Root == a.Root {
		t.Fatal("one more record, same root")
	}
	differ := 0
	for i := range 256 {
		if c.Buckets[i] != a.Buckets[i] {
			differ++
			if i != int(extra[0]) {
				t.Fatalf("bucket %d differs, the extra record is in %d", i, extra[0])
			}
		}
	}
	if differ != 1 {
		t.Fatalf("%d buckets differ, want 1", differ)
	}
	for _, h := range hs[:50] {
		if !a.has(h) {
			t.Fatal("digest lost a hash")
		}
	}
	if a.has(extra) || !c.has(extra) {
		t.Fatal("has answers wrongly for the extra record")
	}
	if empty := newDigest(nil); empty.has(extra) || empty.Root == a.Root {
		t.Fatal("empty digest")
	}
}

func TestHostKeyPersistsAndIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), hostKeyFile)
	k1, err := loadHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v, want 0600 (%v)", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	k2, err := loadHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("host key changed across loads")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("a host key readable by others was left at %v", fi.Mode().Perm())
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadHostKey(path); err == nil {
		t.Fatal("a corrupt host key was accepted")
	}
}

// Only failures no honest peer can cause are held against the sender.
func TestClassifyIsFairToHonestPeers(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	n := &Node{revokedAt: map[directory.PublicKey]time.Time{}}
	r := nw.Entry(t, org, "asesoria", 1)
	reject := func(reason error) error { return &directory.RejectError{Type: r.Type, Reason: reason} }
	for _, c := range []struct {
		err  error
		want verdict
	}{
		{reject(directory.ErrDuplicate), known},
		{reject(directory.ErrStale), known},
		{reject(directory.ErrExpired), ignored},
		{reject(directory.ErrFromFuture), ignored},
		{reject(directory.ErrNotMember), ignored},
		{reject(directory.ErrRevoked), ignored}, // not known to us as revoked
		{errors.New("disk full"), ignored},
	} {
		if got := n.classify(r, c.err); got != c.want {
			t.Errorf("classify(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	n.revokedAt[org.Public()] = time.Now()
	if got := n.classify(r, reject(directory.ErrRevoked)); got != ignored {
		t.Errorf("a peer forwarding a just-revoked key's record is penalized")
	}
	n.revokedAt[org.Public()] = time.Now().Add(-2 * revocationGrace)
	if got := n.classify(r, reject(directory.ErrRevoked)); got != invalid {
		t.Errorf("a peer forwarding a long-revoked key's record is not penalized")
	}
}

// The topic names are derived from the read key (PROTOCOL.md §7): they
// name neither the network nor the epoch, change with every key, and only
// a holder of the key can compute them.
func TestTopicNamesHideTheNetwork(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	next := directory.NewReadKey()
	for kind, name := range map[string]string{"governance": GovernanceTopic(nw.Key), "entries": EntriesTopic(nw.Key)} {
		if len(name) != len("/ceiba/t/")+32 || name == GovernanceTopic(next) || name == EntriesTopic(next) {
			t.Fatalf("%s topic name %q is the same under the next epoch's key", kind, name)
		}
		h, err := hkdf.Key(sha256.New, nw.Key[:], nil, "ceiba/v2/topic "+kind, 32)
		if err != nil {
			t.Fatal(err)
		}
		if name[len("/ceiba/t/"):] != hex.EncodeToString(h)[:32] {
			t.Fatalf("%s topic name is not the documented derivation", kind)
		}
		old := sha256.Sum256(append([]byte("ceiba topic v2 "+kind), nw.ID[:]...))
		if name[len("/ceiba/t/"):] == hex.EncodeToString(old[:])[:32] {
			t.Fatalf("%s topic name is still derived from the network ID", kind)
		}
	}
	if GovernanceTopic(nw.Key) == EntriesTopic(nw.Key) {
		t.Fatal("one topic for governance and entries")
	}
}

func TestPenaltyDecays(t *testing.T) {
	p := penalty{v: 400, at: time.Now().Add(-penaltyHalfLife)}
	if got := decayed(p, time.Now()); got < 190 || got > 210 {
		t.Fatalf("after one half-life: %v, want about 200", got)
	}
	s := &syncer{penalty: map[peer.ID]penalty{"p": {v: 100, at: time.Now()}}}
	if s.appScore("p") > -99 || s.appScore("q") != 0 {
		t.Fatal("application score does not reflect the penalty")
	}
}
