// Package sim is Ceiba's network simulator: N real node.Node instances in
// one process on libp2p's mock network, with link latency, emulated loss
// (lossy.go) and sparse or dense topologies, a bare GossipSub router on
// the same hosts as the baseline (bare.go), and the scenarios the
// benchmarks time: publication and revocation against that baseline
// (measure.go), a laggard's catch-up by sync or by the DHT alone
// (catchup.go), and DHT puts, gets and invite fetches (dht.go).
//
// It is measurement code: it builds its own keys and records with package
// directory, reads nodes only through their public API and events, and is
// run from the benchmarks in bench_test.go (make bench, docs/PERFORMANCE.md).
// Its tests check its own logic on a ten-node network.
package sim
