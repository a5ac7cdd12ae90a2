// Package dhtstore is the Kademlia DHT layer of a Ceiba node: it keeps a
// network's sealed records findable without any server, so a node that holds
// only an invite (network ID, read key, steward keys) can fetch the whole
// directory, and nodes of one network can find each other.
//
// It owns:
//   - the DHT instance (go-libp2p-kad-dht) on the node's host and datastore,
//     with Ceiba's protocol prefix and address policy;
//   - the record layout in the DHT: a record lives under
//     directory.BlindSlot(read key of the epoch, its slot ID), sealed under
//     that same epoch, so DHT nodes can neither read records nor link keys;
//   - the validator every DHT node runs on stored and fetched values: a value
//     must open with the keyring, carry valid signatures, and belong to the
//     slot its key blinds; among valid values the best by directory.Better
//     wins;
//   - manifests (paged slot lists per signer) and fetching a directory
//     through them;
//   - republishing well inside the DHT record lifetime and after a read-key
//     epoch change;
//   - the rendezvous: provider records under a daily key derived from the
//     newest read key.
//
// It must never decide what a record means. Validity here stops at "opens
// with our key, signatures verify, and it belongs under this key"; whether a
// signer is a member, a record is revoked, stale or expired is the
// directory.State's call, and every record this package returns goes
// through State.Apply before anyone believes it. It never holds identities
// beyond the call that signs a manifest, never gossips and never syncs: those
// are other parts of package node.
package dhtstore
