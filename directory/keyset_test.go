package directory

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// The set of accepted keys stays within its bound however many keys pass
// through it, and never makes a weak key pass.
func TestRememberedKeysStayBounded(t *testing.T) {
	set := keySet{max: 8, m: map[PublicKey]struct{}{}}
	var keys []PublicKey
	for range 20 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k := PublicKey(pub)
		keys = append(keys, k)
		set.add(k)
		if len(set.m) > set.max {
			t.Fatalf("%d keys remembered, bound %d", len(set.m), set.max)
		}
	}
	if !set.has(keys[len(keys)-1]) {
		t.Fatal("the key added last is not remembered")
	}
	neutral := PublicKey{1}
	for range 2 {
		if err := CheckPublicKey(neutral); err == nil {
			t.Fatal("the neutral element is accepted")
		}
	}
	if goodKeys.has(neutral) {
		t.Fatal("a refused key was remembered")
	}
}
