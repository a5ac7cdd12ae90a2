package dhtstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// TestRepublishAfterEpochChange: a node lists its records for republishing;
// they go into the DHT under epoch-1 keys once it has peers. When every
// keyring gains the epoch-2 key, the loop re-puts them, and they become
// findable under the new blinded keys, which no one could compute before.
func TestRepublishAfterEpochChange(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo")}
	for i := range 5 {
		recs = append(recs, nw.Entry(t, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	nodes := newCluster(t, nw, 5, func(i int, o *Options) {
		if i == 0 {
			o.Records = func() []*directory.Record { return recs }
		}
	})
	ctx := ctxFor(t, 60*time.Second)
	reader := nodes[4]

	findableUnder := func(k directory.ReadKey) bool {
		for _, r := range recs {
			key := blindKey(t, k, r)
			v, err := reader.s.dht.GetValue(ctx, key)
			if err != nil {
				return false
			}
			got, err := reader.s.val.open(key, v)
			if err != nil || got.Hash() != r.Hash() {
				return false
			}
		}
		return true
	}
	waitFor(t, 30*time.Second, "the first republish under epoch 1", func() bool { return findableUnder(nw.Key) })

	k2 := directory.NewReadKey()
	if findableUnder(k2) {
		t.Fatal("records findable under epoch-2 keys before the rotation")
	}
	// Peers learn the new key before the publisher does, as they would if
	// it was the last to open its key package; the order does not matter,
	// a refused put is retried.
	for _, n := range nodes[1:] {
		n.kr.add(2, k2)
	}
	nodes[0].kr.add(2, k2)
	start := time.Now()
	waitFor(t, 30*time.Second, "records under epoch-2 keys", func() bool { return findableUnder(k2) })
	t.Logf("records findable under the new keys %s after the rotation", time.Since(start).Round(time.Millisecond))

	for _, r := range recs {
		got, err := reader.s.Get(ctx, slotID(t, r))
		if err != nil || got.Hash() != r.Hash() {
			t.Fatalf("Get after rotation = %v, %v", got, err)
		}
	}
}
