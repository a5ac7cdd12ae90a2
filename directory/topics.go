package directory

import "encoding/hex"

// Topic kinds (PROTOCOL.md §7): entries travel on one topic of their read
// key, every other record on the other.
const (
	TopicGovernance = "governance"
	TopicEntries    = "entries"
)

// TopicName is the GossipSub topic of kind under key: "/ceiba/t/" and the
// 32 hex digits of TopicID. The node and the web app's core both name
// topics with it, so a phone and a node cannot disagree on where a
// record travels.
func TopicName(key ReadKey, kind string) string {
	id := TopicID(key, kind)
	return "/ceiba/t/" + hex.EncodeToString(id[:])
}

// SealingKey is the key a peer seals new records under: that of the
// newest effective epoch (effective, oldest first, as State.Epochs) whose
// key kr holds, or epoch 1's before any epoch record is known.
func SealingKey(effective []*Epoch, kr Keyring) (uint64, ReadKey, bool) {
	for i := len(effective) - 1; i >= 0; i-- {
		if k, ok := kr[effective[i].Number]; ok {
			return effective[i].Number, k, true
		}
	}
	if k, ok := kr[1]; ok {
		return 1, k, true
	}
	return 0, ReadKey{}, false
}

// GossipEpochs are the epochs whose topics a peer is on: its sealing
// epoch's, where everything new travels, and the epoch before's if kr
// holds it, where a rotation's epoch record, pages and approvals travel
// (sealed under the older key, so peers that have not opened the new one
// yet still get them) and where publishers that have not rotated yet
// still publish. Empty before the peer holds any key. Older epochs' topics
// are left: a device revoked at a rotation holds only older keys, so it
// can neither name the new topics nor be sent anything on them.
func GossipEpochs(effective []*Epoch, kr Keyring) []uint64 {
	e, _, ok := SealingKey(effective, kr)
	if !ok {
		return nil
	}
	out := []uint64{e}
	if _, ok := kr[e-1]; ok && e > 1 {
		out = append(out, e-1)
	}
	return out
}
