package directory_test

import (
	"fmt"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// BenchmarkApplyRevocation times applying one revocation by stewards (of a
// reader's key, the most common kind) to a state of 50 members that holds
// held such revocations already (held to held+b.N over the run): what
// every node does with a revocation before it forwards it. Records arrive
// verified, as Open hands them over.
//
//	go test -run '^$' -bench 'ApplyRevocation' -benchtime 200x ./directory/
func BenchmarkApplyRevocation(b *testing.B) {
	for _, held := range []int{10, 200, 1000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			nw, _, org, apply := fiftyMembers(b)
			revocation := func() *directory.Record {
				reader := dirtest.MustIdentity(b)
				apply(nw.Vouch(b, org, reader))
				r, err := directory.DecodeRecord(nw.RevokeBy(b, reader.Public()).Encode())
				if err != nil {
					b.Fatal(err)
				}
				return r
			}
			for range held {
				apply(revocation())
			}
			recs := make([]*directory.Record, b.N)
			for i := range recs {
				recs[i] = revocation()
			}
			b.ResetTimer()
			for _, r := range recs {
				apply(r)
			}
		})
	}
}
