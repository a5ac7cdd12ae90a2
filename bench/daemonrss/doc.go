// Package daemonrss measures the resident memory of one real `ceiba
// daemon` process holding a directory of 10,000 and 100,000 entries. It
// holds only a benchmark (rss_bench_test.go); run it through make bench or
//
//	go test -run '^$' -bench DaemonRSS -benchtime 1x -count 3 -timeout 0 ./bench/daemonrss/
//
// The benchmark builds bin/ceiba into a temporary directory, creates a
// home with `ceiba init`, starts `ceiba daemon`, creates a one-steward
// network and admits its own organization through the CLI, then fills the
// store through the real import path (`ceiba import` of bundles it writes
// itself, signed by the home's key and sealed under its read key) and
// reads VmRSS and VmHWM from /proc/PID/status: once after the import, and
// once after restarting the daemon on the filled home, which is the steady
// state of a node that holds the directory, and again 60 s after the
// restart, idle.
package daemonrss
