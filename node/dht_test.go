package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

func dhtConfig(t *testing.T, nw *dirtest.Network, id *directory.Identity) Config {
	cfg := testConfig(t, nw, id, t.TempDir())
	cfg.DHT = DHTConfig{AllowPrivateAddrs: true, FetchInterval: time.Second}
	return cfg
}

// startDHTPair starts the first steward's node and org's, both serving
// the DHT, org's bootstrapped from the steward's.
func startDHTPair(t *testing.T, nw *dirtest.Network, org *directory.Identity) (steward, member *Node) {
	steward = startNode(t, dhtConfig(t, nw, nw.Stewards[0]))
	cfg := dhtConfig(t, nw, org)
	cfg.Bootstrap = []string{addr(steward)}
	return steward, startNode(t, cfg)
}

// The DHT alone is enough: a node that neither pulls by sync nor was
// listening when records were gossiped fetches the whole directory from
// the DHT, through the manifests of the stewards and members, and reaches
// the same digest.
func TestDHTOnlyNodeConverges(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	s, a := startDHTPair(t, nw, org)
	recS, recA := record(s), record(a)
	waitFor(t, 15*time.Second, "the two DHT nodes to know each other", func() bool {
		return s.Status().DHTPeers > 0 && a.Status().DHTPeers > 0
	})

	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	var mine []*directory.Record
	for i := range 4 {
		mine = append(mine, entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	ref.publish(a, mine...)
	want := ref.digest()
	stored := func(rec *recorder, recs ...*directory.Record) func() bool {
		return func() bool {
			for _, r := range recs {
				h := r.Hash()
				if rec.count(func(ev Event) bool { return ev.Kind == EventDHT && ev.Hash == h && ev.Err == nil }) == 0 {
					return false
				}
			}
			return rec.count(func(ev Event) bool { return ev.Kind == EventDHT && ev.Type == directory.TypeManifest && ev.Err == nil }) > 0
		}
	}
	waitFor(t, 30*time.Second, "the steward's records and manifest in the DHT", stored(recS, nw.Genesis))
	waitFor(t, 30*time.Second, "the organization's entries and manifest in the DHT", stored(recA, mine...))

	// A key the network admits (a steward's): nodes serve the DHT, like
	// everything else, only to admitted peers (admit.go).
	cfgF := dhtConfig(t, nw, nw.Stewards[1])
	cfgF.Bootstrap = []string{addr(s)}
	cfgF.DisableSync = true
	start := time.Now()
	f := startNode(t, cfgF)
	recF := record(f)
	waitFor(t, 60*time.Second, "the DHT-only node to converge", func() bool { return f.State().Digest() == want })
	t.Logf("DHT-only node converged %s after start", time.Since(start).Round(time.Millisecond))
	// The state shows records a moment before they are durable and counted.
	var acc map[Via]int
	waitFor(t, 10*time.Second, "the fetched records to be counted", func() bool {
		acc = f.Status().Accepted
		return acc[ViaDHT] >= len(ref.recs)
	})
	if acc[ViaSync] != 0 || acc[ViaGossip] != 0 || acc[ViaDHT] != len(ref.recs) {
		t.Fatalf("DHT-only node accepted %v, want all %d records via the DHT", acc, len(ref.recs))
	}
	if got := len(f.State().Search(directory.Query{Text: "asesoria"})); got != 4 {
		t.Fatalf("DHT-only node finds %d entries, want 4", got)
	}
	// Walking the DHT again, every second as this node does with no sync,
	// reads only the next charter version's slot: every slot the manifests
	// list holds a record it has.
	walks := recF.count(isWalk)
	waitFor(t, 20*time.Second, "two more DHT walks", func() bool { return recF.count(isWalk) >= walks+2 })
	for _, ev := range recF.snapshot() {
		if isWalk(ev) && ev.Pulled == 0 && ev.Read > 1 {
			t.Fatalf("a DHT walk that brought nothing read %d slots; it holds every listed record", ev.Read)
		}
	}
}

// isWalk says whether ev reports a whole DHT walk that finished.
func isWalk(ev Event) bool {
	return ev.Kind == EventDHT && ev.Hash == (directory.Hash{}) && ev.Type == 0 && ev.Err == nil
}

// A publisher's manifest follows a new entry at once, and an update of
// an entry it lists at its own pace: a large publisher's page is 64 KB on
// some twenty DHT peers, too much to put again for every update.
func TestManifestFollowsUpdatesAtItsOwnPace(t *testing.T) {
	every := manifestHeadsEvery
	manifestHeadsEvery = 8 * time.Second
	t.Cleanup(func() { manifestHeadsEvery = every }) // after the nodes close
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	s, a := startDHTPair(t, nw, org)
	recA := record(a)
	waitFor(t, 15*time.Second, "the two DHT nodes to know each other", func() bool {
		return s.Status().DHTPeers > 0 && a.Status().DHTPeers > 0
	})
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	manifests := func() int {
		return recA.count(func(ev Event) bool { return ev.Kind == EventDHT && ev.Type == directory.TypeManifest && ev.Err == nil })
	}
	ref.publish(a, entryRec(t, nw, org, "asesoria", 1))
	waitFor(t, 20*time.Second, "the first manifest", func() bool { return manifests() == 1 })

	start := time.Now()
	ref.publish(a, entryRec(t, nw, org, "asesoria", 2))
	waitFor(t, 30*time.Second, "the manifest with the update's head", func() bool { return manifests() == 2 })
	if took := time.Since(start); took < manifestHeadsEvery*3/4 {
		t.Fatalf("an update re-put the manifest after %s, within the %s it waits", took.Round(time.Millisecond), manifestHeadsEvery)
	}
	start = time.Now()
	ref.publish(a, entryRec(t, nw, org, "albergue", 1))
	waitFor(t, 30*time.Second, "the manifest with the new entry", func() bool { return manifests() == 3 })
	if took := time.Since(start); took > manifestHeadsEvery*3/4 {
		t.Fatalf("a new entry's slot reached the manifest after %s, as late as an update's", took.Round(time.Millisecond))
	}
}
