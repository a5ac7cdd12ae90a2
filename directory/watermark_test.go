package directory_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A steward's heartbeat names, per member, the newest entry its node held.
// A copy lacking an entry issued that late, past the grace period, says it
// is behind (SECURITY.md open issue 5: peers that forward heartbeats but
// withhold entries); within the grace it does not, nor once the entry
// arrives, nor for a member it holds revoked. Before, withholding entries
// alone was not detected.
func TestHeartbeatShowsEntriesWithheld(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, quiet := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	admit, admitQuiet := nw.Admit(t, org, "Colectivo"), nw.Admit(t, quiet, "Sin entradas")
	old := nw.Sign(t, dirtest.SampleEntry("asesoria", 1, nw.Now.Add(-time.Hour)), org)
	fresh := nw.Sign(t, dirtest.SampleEntry("albergue", 1, nw.Now), org)
	base := append([]*directory.Record{nw.Genesis, nw.FirstEpoch, admit, admitQuiet, old}, nw.FirstPages...)

	stewardCopy := nw.State()
	mustApply(t, stewardCopy, append(base, fresh)...)
	hb, err := directory.NewHeartbeat(stewardCopy, nw.Stewards[0], time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := hb.DecodeBody()
	if ms := body.(*directory.Heartbeat).Members; len(ms) != 1 || ms[0].Member != org.Public() || ms[0].Newest != nw.Now.Unix() {
		t.Fatalf("watermarks %+v, want the organization's newest entry (the member without entries not listed)", ms)
	}

	clock := nw.Now
	s := directory.NewState(nw.ID, func() time.Time { return clock })
	mustApply(t, s, append(base, hb)...)
	if f := s.HeartbeatFreshness(); f.Behind {
		t.Fatalf("entry withheld for no time yet: %+v, want not behind within the grace", f)
	}
	clock = clock.Add(directory.HeartbeatGrace + time.Second)
	if f := s.HeartbeatFreshness(); !f.Behind || f.BehindMembers != 1 || f.BehindCharter != 0 || f.BehindEpoch != 0 || f.Stale {
		t.Fatalf("entry withheld past the grace: %+v, want behind on one member, not stale", f)
	}
	mustApply(t, s, fresh)
	if f := s.HeartbeatFreshness(); f.Behind {
		t.Fatalf("the entry arrived: %+v, want not behind", f)
	}

	// A member revoked here left on purpose: not behind on it.
	r := directory.NewState(nw.ID, func() time.Time { return clock })
	mustApply(t, r, append(base, hb, nw.RevokeBy(t, org.Public()))...)
	if f := r.HeartbeatFreshness(); f.Behind {
		t.Fatalf("member revoked here: %+v, want not behind", f)
	}
}

// Watermarks are bounded and canonical: more than MaxHeartbeatMembers, a
// key twice or out of order are refused at decoding, naming the fault; a
// steward's node names at most as many as fit the charter's record limit.
func TestHeartbeatWatermarkRules(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	a, b := dirtest.MustIdentity(t).Public(), dirtest.MustIdentity(t).Public()
	if string(a[:]) > string(b[:]) {
		a, b = b, a
	}
	mk := func(ms ...directory.Watermark) error {
		_, err := directory.NewRecord(nw.ID, &directory.Heartbeat{Charter: 1, Digest: directory.Hash{7}, Issued: nw.Now.Unix(),
			Expires: nw.Now.Add(time.Hour).Unix(), Members: ms}, nw.Stewards[0])
		return err
	}
	at := nw.Now.Unix()
	if err := mk(directory.Watermark{Member: a, Newest: at}, directory.Watermark{Member: b, Newest: at}); err != nil {
		t.Fatalf("two watermarks in order: %v", err)
	}
	for name, ms := range map[string][]directory.Watermark{
		"out of order": {{Member: b, Newest: at}, {Member: a, Newest: at}},
		"a key twice":  {{Member: a, Newest: at}, {Member: a, Newest: at}},
		"too early":    {{Member: a, Newest: 1}},
	} {
		if err := mk(ms...); !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	many := make([]directory.Watermark, directory.MaxHeartbeatMembers+1)
	for i := range many {
		many[i].Member[0], many[i].Member[1], many[i].Newest = byte(i>>8), byte(i), at
	}
	if err := mk(many...); !errors.Is(err, directory.ErrInvalid) {
		t.Errorf("%d watermarks: %v, want ErrInvalid", len(many), err)
	}
	if err := mk(many[:directory.MaxHeartbeatMembers]...); err != nil {
		t.Errorf("%d watermarks: %v", directory.MaxHeartbeatMembers, err)
	}
	full, err := directory.NewRecord(nw.ID, &directory.Heartbeat{Charter: 1, Epoch: 1 << 39, Digest: directory.Hash{7}, Issued: nw.Now.Unix(),
		Expires: nw.Now.Add(time.Hour).Unix(), Members: many[:directory.MaxHeartbeatMembers]}, nw.Stewards[0])
	if err != nil {
		t.Fatal(err)
	}
	if n := len(full.Encode()); n > directory.DefaultMaxRecordBytes {
		t.Errorf("a heartbeat of %d watermarks takes %d bytes, above the default max_record_bytes %d", directory.MaxHeartbeatMembers, n, directory.DefaultMaxRecordBytes)
	}
	t.Logf("a heartbeat of %d watermarks: %d bytes", directory.MaxHeartbeatMembers, len(full.Encode()))
}

// A heartbeat citing a charter version this copy lacks is refused for now
// (it waits for the version), yet says the copy is behind once it is older
// than the grace: an amendment withheld alone. Before, it waited with the
// amendment and said nothing. Signed by someone not a steward of this
// copy's charter, it says nothing.
func TestWaitingHeartbeatShowsAmendmentWithheld(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	clock := nw.Now
	s := directory.NewState(nw.ID, func() time.Time { return clock })
	mustApply(t, s, append([]*directory.Record{nw.Genesis, nw.FirstEpoch}, nw.FirstPages...)...)
	mustApply(t, s, heartbeat(t, nw, nw.Stewards[1], 1, clock, time.Hour))
	ahead := heartbeat(t, nw, nw.Stewards[0], 2, clock, time.Hour)
	_, err := s.Apply(ahead)
	wantReject(t, err, directory.ErrUnknownCharter)
	outsider := heartbeat(t, nw, dirtest.MustIdentity(t), 2, clock, time.Hour)
	if f := s.HeartbeatFreshnessWith([]*directory.Record{ahead, outsider}); f.Behind {
		t.Fatalf("within the grace: %+v, want not behind", f)
	}
	clock = clock.Add(directory.HeartbeatGrace + time.Second)
	if f := s.HeartbeatFreshnessWith([]*directory.Record{outsider}); f.Behind {
		t.Fatalf("only an outsider claims charter 2: %+v, want not behind", f)
	}
	if f := s.HeartbeatFreshnessWith([]*directory.Record{ahead}); !f.Behind || f.BehindCharter != 2 || f.Stale || f.Valid != 1 {
		t.Fatalf("charter 2 reported past the grace: %+v, want behind on charter 2 (not stale, the held heartbeat valid)", f)
	}
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, nw.Sign(t, v2, nw.Stewards[0], nw.Stewards[1]), ahead)
	if f := s.HeartbeatFreshnessWith(nil); f.Behind {
		t.Fatalf("the amendment arrived: %+v, want not behind", f)
	}
}
