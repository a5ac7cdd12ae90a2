// Package node runs one Ceiba peer: it joins one network and keeps a full,
// durable, converged replica of its directory.
//
// It owns the moving parts around the directory state:
//   - the libp2p host, with a persistent identity of its own (DataDir/host.key),
//     kept apart from the organization's signing key;
//   - the on-disk store (go-datastore over pebble), where every record the
//     state pools is kept sealed under a read key, written durably before
//     the node acknowledges it (and, for a record taken by gossip, which
//     nobody waits on, in batches behind the validator: writebehind.go),
//     and from which the state is rebuilt at start;
//   - the GossipSub topic of the network, whose validator opens and applies
//     every message before it is forwarded, and the peer scoring that makes
//     a sender of garbage lose its peers;
//   - anti-entropy sync ("/ceiba/sync/1.0.0"), which pulls whatever a peer
//     holds and this node lacks, on every new connection and periodically,
//     so that a node that was offline or partitioned converges;
//   - the DHT layer (package node/dhtstore) wired to the same ingest path;
//   - adopting new read keys from effective epochs, and rotating them on a
//     steward's node;
//   - the event stream the CLI, web UI and benchmarks watch.
//
// It never decides whether a record is valid or what it means: package
// directory does (directory.Open, State.Apply). Every record, from whatever
// source (local publish, gossip, sync, DHT, import, the store at start),
// takes the same path: open, apply, store, announce. The node only decides
// what a refusal says about the peer that sent it, so that honest peers
// racing a revocation or a clock edge are never punished like forgers.
package node
