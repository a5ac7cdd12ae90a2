package directory_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// TestWriteFuzzSeeds rewrites the valid-record seeds of the fuzz corpora
// after a change of the record format. It writes only when asked:
//
//	CEIBA_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./directory/
//
// A value other than 1 names the one seed to write (a new record kind),
// leaving the others as they are: every run draws fresh keys.
//
// TestFuzzSeedsStayValid then checks that every named seed is accepted.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("CEIBA_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("writes testdata only when CEIBA_WRITE_FUZZ_SEEDS is set")
	}
	// A page of 64 padded packages would make a 60 KB seed.
	defer directory.PadForTest(func(n int) int { return n + 1 })()
	stewards := []*directory.Identity{dirtest.MustIdentity(t), dirtest.MustIdentity(t)}
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	var list []directory.Steward
	for i, s := range stewards {
		list = append(list, directory.Steward{Key: s.Public(), KEM: s.KEMPublic(), KEMSig: s.KEMBinding(), Name: fmt.Sprintf("steward %d", i+1)})
	}
	now := dirtest.Epoch
	genesis, err := directory.NewGenesis("Red de prueba", list, 2, directory.Policy{}, now)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(body directory.Body, by ...*directory.Identity) *directory.Record {
		r, err := directory.NewRecord(fuzzNet, body, by...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	amend, err := directory.Amend(genesis, directory.Hash{1}, list, 1, directory.Policy{}, now)
	if err != nil {
		t.Fatal(err)
	}
	membership := sign(&directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: "Colectivo", Issued: now.Unix()}, stewards[0])
	approval, err := directory.NewApproval(membership, stewards[1])
	if err != nil {
		t.Fatal(err)
	}
	tomb := dirtest.SampleEntry("asesoria", 2, now)
	tomb.Deleted, tomb.Service = true, nil
	epochBody, pages, err := directory.NewEpoch(fuzzNet, 1, 1, directory.Hash{}, fuzzKey,
		[]directory.Recipient{{Key: org.Public(), KEM: org.KEMPublic()}}, now, directory.DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	genesisRecord, err := directory.NewRecord(directory.GenesisIDOf(genesis), genesis, stewards...)
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]*directory.Record{
		"genesis":    genesisRecord,
		"amendment":  sign(amend, stewards...),
		"membership": membership,
		"reader":     sign(&directory.Reader{Key: reader.Public(), KEM: reader.KEMPublic(), KEMSig: reader.KEMBinding(), Issued: now.Unix()}, org),
		"entry":      sign(dirtest.SampleEntry("asesoria", 1, now), org),
		"tombstone":  sign(tomb, org),
		"revocation": sign(&directory.Revocation{Key: reader.Public(), Issued: now.Unix()}, reader),
		"epoch":      sign(epochBody, stewards...),
		"epoch-page": sign(pages[0], stewards[0]),
		"approval":   approval,
		"evidence":   evidenceSeed(t, sign, org, now),
		"evidence-fork": func() *directory.Record {
			other, err := directory.Amend(genesis, directory.Hash{1}, list, 2, directory.Policy{}, now)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := directory.NewEvidence(sign(amend, stewards...), sign(other, stewards...), org)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}(),
		"evidence-kem": func() *directory.Record {
			voucher, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
			first := sign(&directory.Reader{Key: reader.Public(), KEM: reader.KEMPublic(), KEMSig: reader.KEMBinding(), Issued: now.Unix()}, org)
			second := directory.Reader{Key: reader.Public(), KEM: other.KEMPublic(), Issued: now.Unix() + 1}
			second.KEMSig = signBindingAs(t, reader, other.KEMPublic())
			ev, err := directory.NewEvidence(sign(&second, voucher), first, org)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}(),
		"manifest": sign(&directory.Manifest{Page: 0, Pages: 1, Issued: now.Unix(),
			Slots: []directory.SlotID{directory.SlotIDOf("charter/1"), directory.SlotIDOf("entry/" + org.Public().Hex() + "/asesoria")},
			Heads: []directory.Head{directory.HeadOf(genesisRecord.Hash()), {1}}}, org),
		"heartbeat": sign(&directory.Heartbeat{Charter: 1, Epoch: 1, Digest: directory.Hash{1}, Issued: now.Unix(),
			Expires: now.Add(directory.DefaultHeartbeatValidity).Unix()}, stewards[0]),
		"heartbeat-members": sign(&directory.Heartbeat{Charter: 1, Epoch: 1, Digest: directory.Hash{1}, Issued: now.Unix(),
			Expires: now.Add(directory.DefaultHeartbeatValidity).Unix(), Members: []directory.Watermark{{Member: org.Public(), Newest: now.Unix()}}}, stewards[0]),
	}
	write := func(target, name string, lines ...string) {
		dir := filepath.Join("testdata", "fuzz", target)
		data := "go test fuzz v1\n"
		for _, l := range lines {
			data += l + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	only := os.Getenv("CEIBA_WRITE_FUZZ_SEEDS")
	for name, r := range records {
		if only != "1" && name != only {
			continue
		}
		write("FuzzDecodeRecord", name, fmt.Sprintf("[]byte(%q)", r.Encode()))
		write("FuzzDecodeBody", name, fmt.Sprintf("byte(%q)", rune(r.Type)), fmt.Sprintf("[]byte(%q)", r.Body))
	}
	if only != "1" {
		return
	}
	for _, name := range []string{"entry", "membership", "approval", "tombstone"} {
		write("FuzzOpen", name, fmt.Sprintf("[]byte(%q)", directory.Seal(records[name], fuzzKey)), "bool(false)")
	}
	// Refused seeds: a record of another network under this network's
	// key, and a header whose key tag names no key the fuzzer holds.
	write("FuzzOpen", "genesis-of-another-network", fmt.Sprintf("[]byte(%q)", directory.Seal(records["genesis"], fuzzKey)), "bool(false)")
	unknown := directory.ReadKey(sha256.Sum256([]byte("ceiba fuzz: a key nobody holds")))
	write("FuzzOpen", "unknown-key-tag", fmt.Sprintf("[]byte(%q)", directory.Seal(records["entry"], unknown)), "bool(false)")
	write("FuzzOpen", "plain-entry", fmt.Sprintf("[]byte(%q)", pad(records["entry"].Encode())), "bool(true)")
}

// padded applies the seal's padding rule to a plaintext.
// evidenceSeed is evidence of an entry's two versions with one seq.
func evidenceSeed(t *testing.T, sign func(directory.Body, ...*directory.Identity) *directory.Record, org *directory.Identity, now time.Time) *directory.Record {
	other := dirtest.SampleEntry("asesoria", 1, now)
	other.Service.Name = "Otro servicio"
	ev, err := directory.NewEvidence(sign(dirtest.SampleEntry("asesoria", 1, now), org), sign(other, org), org)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
