// Package storetest damages a node's on-disk store the way a failing disk
// would, for tests of what the node does about it.
package storetest

import (
	"os"
	"path/filepath"
	"testing"
)

// DamageTable inverts n bytes a third of the way into the largest table
// (.sst) of the pebble store in dir, among its data blocks (they come
// before the index and footer), and returns the table's file name.
func DamageTable(tb testing.TB, dir string, n int) string {
	tb.Helper()
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var path string
	var size int64
	for _, p := range tables {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			path, size = p, fi.Size()
		}
	}
	if path == "" {
		tb.Fatalf("no table in %s", dir)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	at := len(b) / 3
	for i := range min(n, len(b)-at) {
		b[at+i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return filepath.Base(path)
}
