package directory_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

func TestKeystoreRoundTrip(t *testing.T) {
	id := dirtest.MustIdentity(t)
	ks := &directory.Keystore{Identity: id, Keys: directory.Keyring{1: directory.NewReadKey(), 2: directory.NewReadKey()}}
	path := filepath.Join(t.TempDir(), "keys.age")
	if err := directory.SaveKeystore(path, ks, "correct horse", 10); err != nil {
		t.Fatal(err)
	}
	got, err := directory.LoadKeystore(path, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity.Public() != id.Public() || string(got.Identity.KEMPublic()) != string(id.KEMPublic()) {
		t.Fatal("identity changed across save and load")
	}
	if len(got.Keys) != 2 || got.Keys[2] != ks.Keys[2] {
		t.Fatalf("keyring = %v, want the two saved keys", got.Keys)
	}
	raw, _ := os.ReadFile(path)
	seed := id.Public()
	if containsBytes(raw, seed[:]) {
		t.Fatal("keystore file contains the public key in clear; it should all be encrypted")
	}
}

func TestKeystoreWrongPassphrase(t *testing.T) {
	ks := &directory.Keystore{Identity: dirtest.MustIdentity(t)}
	data, err := ks.Encrypt("right", 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := directory.DecryptKeystore(data, "wrong"); !errors.Is(err, directory.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: err = %v, want ErrWrongPassphrase", err)
	}
	data[len(data)-1] ^= 1
	if _, err := directory.DecryptKeystore(data, "right"); !errors.Is(err, directory.ErrCorruptKeystore) {
		t.Fatalf("tampered file: err = %v, want ErrCorruptKeystore", err)
	}
	if _, err := ks.Encrypt("", 10); err == nil {
		t.Fatal("empty passphrase accepted")
	}
}

func containsBytes(hay, needle []byte) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		if string(hay[i:i+len(needle)]) == string(needle) {
			return true
		}
	}
	return false
}

// The phone keeps the address of the node it syncs with inside the
// encrypted keystore: it comes back with the passphrase, is not in the
// bytes in clear, and a keystore without any (a node's) still opens.
func TestKeystoreKeepsNodesEncrypted(t *testing.T) {
	addr := "/ip4/192.0.2.7/udp/4001/quic-v1/webtransport/certhash/uEiAx/p2p/12D3KooWExample"
	ks := &directory.Keystore{Identity: dirtest.MustIdentity(t), Nodes: []string{addr}}
	data, err := ks.Encrypt("correct horse", 10)
	if err != nil {
		t.Fatal(err)
	}
	if containsBytes(data, []byte("192.0.2.7")) || containsBytes(data, []byte("12D3KooWExample")) {
		t.Fatal("the keystore holds the node's address in clear")
	}
	got, err := directory.DecryptKeystore(data, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 1 || got.Nodes[0] != addr {
		t.Fatalf("nodes after a round trip: %q, want [%q]", got.Nodes, addr)
	}
	many := make([]string, directory.MaxKeystoreNodes+1)
	for i := range many {
		many[i] = addr
	}
	for _, bad := range [][]string{many, {""}} {
		if _, err := (&directory.Keystore{Identity: ks.Identity, Nodes: bad}).Encrypt("correct horse", 10); err == nil {
			t.Errorf("a keystore with %d node addresses (%q…) was encrypted", len(bad), bad[0][:min(len(bad[0]), 10)])
		}
	}
}
