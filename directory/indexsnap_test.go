package directory_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// snapshotNetwork is a directory of two organizations' entries, after
// edits, a deletion and a revocation, as the records a node would store.
func snapshotNetwork(t testing.TB) (*dirtest.Network, []*directory.Record) {
	nw := dirtest.New(t, 1, 1)
	a, b := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, a, "Colectivo A"), nw.Admit(t, b, "Colectivo B")}
	for i := range 30 {
		org := a
		if i%3 == 0 {
			org = b
		}
		e := dirtest.SampleEntry(fmt.Sprintf("servicio-%02d", i), 1, nw.Now)
		e.Service.Name = fmt.Sprintf("Servicio %02d", 30-i)
		e.Service.Description = fmt.Sprintf("Acompañamiento jurídico número %d para personas refugiadas.", i)
		if i%4 == 0 {
			e.Service.Categories = []string{"shelter"}
			e.Service.Areas = []directory.Area{{City: "Quito", Country: "EC"}}
		}
		recs = append(recs, nw.Sign(t, e, org))
	}
	edit := dirtest.SampleEntry("servicio-01", 2, nw.Now)
	edit.Service.Name = "Refugio temporal"
	gone := dirtest.SampleEntry("servicio-02", 2, nw.Now)
	gone.Service, gone.Deleted = nil, true
	recs = append(recs, nw.Sign(t, edit, a), nw.Sign(t, gone, a))
	return nw, recs
}

var snapshotQueries = []directory.Query{
	{Text: "servicio"}, {Text: "refugio"}, {Text: "juridico refugiadas"}, {Text: "acompa"},
	{Text: "acompañamento"}, {Category: "shelter"}, {Area: "EC"}, {Area: "Quito"},
	{Language: "es"}, {Text: "número 7"}, {Text: "nada parecido"},
}

func searchAll(s *directory.State) [][]directory.Result {
	var out [][]directory.Result
	for _, q := range snapshotQueries {
		out = append(out, s.Search(q))
	}
	return out
}

func loadState(t *testing.T, nw *dirtest.Network, recs []*directory.Record, snap []byte) (*directory.State, error) {
	t.Helper()
	s := nw.State()
	var decoded *directory.IndexSnapshot
	if snap != nil {
		var err error
		if decoded, err = directory.DecodeIndexSnapshot(snap); err != nil {
			t.Fatalf("decoding the snapshot: %v", err)
		}
	}
	s.LoadingUnindexed()
	for _, r := range recs {
		s.Apply(r)
	}
	err := s.RestoreIndex(decoded)
	s.Loaded()
	return s, err
}

// A state restored with the snapshot its own index made answers every
// search as the index built entry by entry did, and keeps answering
// correctly as entries change afterwards.
func TestIndexSnapshotRestoresTheSameSearches(t *testing.T) {
	nw, recs := snapshotNetwork(t)
	built := nw.State()
	mustApply(t, built, recs...)
	snap := built.EncodeIndexSnapshot()
	if snap == nil {
		t.Fatal("no snapshot of a settled index")
	}
	restored, err := loadState(t, nw, recs, snap)
	if err != nil {
		t.Fatalf("a matching snapshot was not used: %v", err)
	}
	want := searchAll(built)
	if got := searchAll(restored); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored searches differ:\n got %v\nwant %v", got, want)
	}
	if got, want := restored.Stats().Entries, built.Stats().Entries; got != want || got == 0 {
		t.Fatalf("restored index holds %d entries, built %d", got, want)
	}

	// After the restore the index is an ordinary one: an edit, a new
	// entry and a revocation reach it.
	var more []*directory.Record
	fresh := dirtest.MustIdentity(t)
	more = append(more, nw.Admit(t, fresh, "Colectivo C"))
	e := dirtest.SampleEntry("zapateria", 1, nw.Now)
	e.Service.Name = "Zapatería solidaria"
	more = append(more, nw.Sign(t, e, fresh))
	more = append(more, nw.RevokeBy(t, recs[3].Sigs[0].Key))
	mustApply(t, built, more...)
	mustApply(t, restored, more...)
	if got := restored.Search(directory.Query{Text: "zapateria"}); len(got) != 1 {
		t.Fatalf("an entry published after the restore: %d results", len(got))
	}
	want = searchAll(built)
	if got := searchAll(restored); !reflect.DeepEqual(got, want) {
		t.Fatalf("searches after changes differ:\n got %v\nwant %v", got, want)
	}
	if again := restored.EncodeIndexSnapshot(); again == nil {
		t.Fatal("no snapshot of a restored index")
	}
}

// A snapshot that does not describe exactly the state's entries is not
// used: the state indexes its entries itself and says why.
func TestIndexSnapshotOfAnotherStateIsRefused(t *testing.T) {
	nw, recs := snapshotNetwork(t)
	built := nw.State()
	mustApply(t, built, recs...)
	want := searchAll(built)
	snap := built.EncodeIndexSnapshot()
	newcomer := dirtest.MustIdentity(t)
	admitted := append(recs[:len(recs):len(recs)], nw.Admit(t, newcomer, "Colectivo C"))

	cases := map[string][]*directory.Record{
		"an entry fewer":      recs[:len(recs)-3],
		"an older version":    append(recs[:len(recs)-2:len(recs)-2], recs[len(recs)-1]),
		"an entry more":       append(admitted, nw.Sign(t, dirtest.SampleEntry("nuevo", 1, nw.Now), newcomer)),
		"its publisher gone":  append(recs[:len(recs):len(recs)], nw.RevokeBy(t, recs[4].Sigs[0].Key)),
		"the same, no change": recs,
	}
	for name, rs := range cases {
		t.Run(name, func(t *testing.T) {
			ref := nw.State()
			for _, r := range rs {
				ref.Apply(r)
			}
			s, err := loadState(t, nw, rs, snap)
			if name == "the same, no change" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else if !errors.Is(err, directory.ErrIndexSnapshot) {
				t.Fatalf("RestoreIndex = %v, want ErrIndexSnapshot", err)
			}
			if got, want := searchAll(s), searchAll(ref); !reflect.DeepEqual(got, want) {
				t.Fatalf("searches differ from a state indexed as it applied:\n got %v\nwant %v", got, want)
			}
		})
	}
	if s, err := loadState(t, nw, recs, nil); !errors.Is(err, directory.ErrIndexSnapshot) || !reflect.DeepEqual(searchAll(s), want) {
		t.Fatalf("without a snapshot: %v", err)
	}
}

// Damaged snapshots are refused with an error, whatever byte is wrong;
// one whose damage still decodes is checked against the state, and the
// state then answers searches as it would have without it (the node
// seals its snapshot, so such damage is a bug, not an attack, but it must
// not crash a start).
func TestIndexSnapshotDamageIsAnError(t *testing.T) {
	nw, recs := snapshotNetwork(t)
	built := nw.State()
	mustApply(t, built, recs...)
	snap := built.EncodeIndexSnapshot()
	used := 0
	for i := 0; i < len(snap); i += max(1, len(snap)/500) {
		b := append([]byte(nil), snap...)
		b[i] ^= 0x5a
		switch _, err := directory.DecodeIndexSnapshot(b); {
		case err == nil:
			s, err := loadState(t, nw, recs, b)
			if err == nil {
				used++
			}
			searchAll(s)
		case !errors.Is(err, directory.ErrIndexSnapshot):
			t.Fatalf("byte %d: %v is not ErrIndexSnapshot", i, err)
		}
		if _, err := directory.DecodeIndexSnapshot(b[:i]); !errors.Is(err, directory.ErrIndexSnapshot) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
	if _, err := directory.DecodeIndexSnapshot(append(snap, 0)); !errors.Is(err, directory.ErrIndexSnapshot) {
		t.Fatalf("a trailing byte: %v", err)
	}
	t.Logf("%d damaged snapshots decoded and matched the state", used)
}

// TestWriteIndexSnapshotSeed writes a small valid snapshot into the fuzz
// corpus, only when asked (the analyser's fingerprint is in it, so it must
// be written again when the analyser changes):
//
//	CEIBA_WRITE_FUZZ_SEEDS=1 go test -run TestWriteIndexSnapshotSeed ./directory/
func TestWriteIndexSnapshotSeed(t *testing.T) {
	if os.Getenv("CEIBA_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("writes testdata only when CEIBA_WRITE_FUZZ_SEEDS is set")
	}
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo"))
	for i := range 3 {
		e := dirtest.SampleEntry(fmt.Sprintf("s-%d", i), 1, nw.Now)
		e.Service.Areas = []directory.Area{{City: "Quito", Country: "EC"}}
		mustApply(t, s, nw.Sign(t, e, org))
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeIndexSnapshot")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.EncodeIndexSnapshot())
	if err := os.WriteFile(filepath.Join(dir, "valid"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeIndexSnapshot(f *testing.F) {
	nw, recs := snapshotNetwork(f)
	built := nw.State()
	for _, r := range recs {
		built.Apply(r)
	}
	snap := built.EncodeIndexSnapshot()
	f.Add(snap)
	f.Add(snap[:len(snap)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		// Restoring what decodes into a state, and searching it, is
		// TestIndexSnapshotDamageIsAnError's: applying the records for
		// every input would starve the fuzzer.
		if _, err := directory.DecodeIndexSnapshot(b); err != nil && !errors.Is(err, directory.ErrIndexSnapshot) {
			t.Fatalf("%v is not ErrIndexSnapshot", err)
		}
	})
}
