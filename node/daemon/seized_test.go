package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/ceiba-network/ceiba/directory"
)

// A reader's device is seized after it synced the directory. Without the
// passphrase nothing on it is readable: no entry name, contact or
// description, no organization or network name, no read key, in any file
// or in any key or value of its store. `wipe` then leaves nothing.
func TestSeizedReaderDeviceHoldsNothingReadable(t *testing.T) {
	ctx := context.Background()
	const network, orgName, service, contact = "Red Quetzal Secreta", "Colectivo Ceiba Oculto", "Refugio Quetzal Escondido", "+52 55 1234 9876"
	svc := &directory.Service{Name: service, Description: "Albergue temporal en la colonia Roma", Status: "active",
		Categories: []string{"shelter"}, Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "signal", Value: contact}}}
	_, _, reader := readerNetwork(t, network, orgName, "refugio", svc, "quetzal")
	reader.mu.Lock()
	var secrets [][]byte
	for _, k := range reader.ks.Keys {
		secrets = append(secrets, k[:])
	}
	reader.mu.Unlock()
	for _, s := range []string{network, orgName, service, contact, "colonia Roma"} {
		secrets = append(secrets, []byte(s))
	}
	home := reader.home
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}

	// Every file, byte for byte.
	var files int
	filepath.Walk(home.Dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		files++
		b, _ := os.ReadFile(p)
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s holds %q in the clear", strings.TrimPrefix(p, home.Dir), truncateSecret(s))
			}
		}
		return nil
	})
	keys, _ := os.ReadFile(home.KeysPath())
	if !bytes.HasPrefix(keys, []byte("age-encryption.org/v1")) {
		t.Error("the keystore is not an age file")
	}
	// Every key and value of the store (its tables may be compressed, so
	// a byte search of the files alone would not be proof).
	ds, err := pebbleds.NewDatastore(filepath.Join(home.DataDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ds.Query(ctx, query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	values := 0
	for e := range res.Next() {
		values++
		for _, s := range secrets {
			if bytes.Contains(e.Value, s) || strings.Contains(e.Key, string(s)) {
				t.Errorf("store key %s holds %q in the clear", e.Key, truncateSecret(s))
			}
		}
	}
	res.Close()
	ds.Close()
	if values == 0 {
		t.Fatal("the reader's store is empty: nothing was checked")
	}
	t.Logf("seized reader device: %d files, %d store values, none readable without the passphrase", files, values)

	if err := Wipe(home); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home.Dir); !os.IsNotExist(err) {
		t.Fatalf("after wipe the home is still there: %v", err)
	}
}

func truncateSecret(s []byte) string {
	if len(s) == 32 {
		return "a read key"
	}
	return string(s)
}
