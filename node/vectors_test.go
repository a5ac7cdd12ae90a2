package node

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	ma "github.com/multiformats/go-multiaddr"
)

// TestProtocolVectors: the node names its gossip topics, and reads invite
// code addresses, as docs/vectors says (PROTOCOL.md §7, §9, §11); the
// directory package checks the rest of the vectors.
func TestProtocolVectors(t *testing.T) {
	var d struct {
		ReadKey string            `json:"read_key"`
		Topics  map[string]string `json:"topics"`
	}
	readVectorFile(t, "derivations.json", &d)
	kb, err := hex.DecodeString(d.ReadKey)
	if err != nil || len(kb) != len(directory.ReadKey{}) {
		t.Fatalf("read key: %v", err)
	}
	key := directory.ReadKey(kb)
	if got := GovernanceTopic(key); got != d.Topics["governance"] {
		t.Errorf("governance topic %s, vector %s", got, d.Topics["governance"])
	}
	if got := EntriesTopic(key); got != d.Topics["entries"] {
		t.Errorf("entries topic %s, vector %s", got, d.Topics["entries"])
	}

	var inv struct {
		Code struct {
			Addrs     []string `json:"addrs"`
			AddrsText []string `json:"addrs_text"`
		} `json:"code"`
	}
	readVectorFile(t, "invite.json", &inv)
	if len(inv.Code.Addrs) == 0 || len(inv.Code.Addrs) != len(inv.Code.AddrsText) {
		t.Fatalf("invite vector lists %d addresses and %d texts", len(inv.Code.Addrs), len(inv.Code.AddrsText))
	}
	for i, h := range inv.Code.Addrs {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil || a.String() != inv.Code.AddrsText[i] {
			t.Errorf("invite address %d: %v (%v), vector %s", i, a, err, inv.Code.AddrsText[i])
		}
	}
}

func readVectorFile(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("../docs/vectors/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
