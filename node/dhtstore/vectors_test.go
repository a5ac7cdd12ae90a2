package dhtstore

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// TestRendezvousVector: the CID a node provides for a read key and a day
// is the one docs/vectors/derivations.json gives (PROTOCOL.md §7, §11),
// which directory's TestVectors derives from the text.
func TestRendezvousVector(t *testing.T) {
	b, err := os.ReadFile("../../docs/vectors/derivations.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		ReadKey    string `json:"read_key"`
		Rendezvous []struct {
			Day string `json:"day"`
			CID string `json:"cid"`
		} `json:"rendezvous"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	kb, err := hex.DecodeString(f.ReadKey)
	if err != nil || len(kb) != len(directory.ReadKey{}) {
		t.Fatalf("read key: %v", err)
	}
	if len(f.Rendezvous) == 0 {
		t.Fatal("no rendezvous vectors")
	}
	for _, v := range f.Rendezvous {
		day, err := time.Parse(time.DateOnly, v.Day)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(RendezvousCID(directory.ReadKey(kb), day).Bytes()); got != v.CID {
			t.Errorf("rendezvous CID of %s: %s, vector %s", v.Day, got, v.CID)
		}
	}
}
