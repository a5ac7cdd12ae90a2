// The web app against a node that accepts its stream and never answers:
// what a forged invite code (a poster's QR, a message) pointing at a
// hostile host does, or a peer that stalls a sync. For the Go tests
// TestWebappJoinGivesUpOnASilentInviter and TestWebappSyncGivesUpOnASilentNode:
//   node silent-node.mjs WASM_EXEC_JS CORE_WASM invite SILENT_CODE WAIT_MS
//   node silent-node.mjs WASM_EXEC_JS CORE_WASM sync SILENT_CODE WAIT_MS READER_CODE
// invite redeems SILENT_CODE (src/invite.js, as app.js's join runs it);
// sync first joins with READER_CODE, a real node's, then runs a sync
// session (src/sync.js) with the host SILENT_CODE names. It prints one
// JSON object: whether that settled within WAIT_MS, how, and after how long.
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { redeemInvite } from '../src/invite.js';
import { syncWith } from '../src/sync.js';
import { loadCore } from './core-node.mjs';

const [wasmExec, wasmPath, mode, code, waitMs, readerCode] = process.argv.slice(2);
const core = await loadCore(wasmExec, wasmPath);
const made = core.newIdentity('una frase de paso larga');
if (made.error) throw new Error(made.error);
const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
let run;
if (mode === 'sync') {
  await redeemInvite(node, core, readerCode);
  const conn = await node.dial(core.parseInvite(code).addrs.map((a) => multiaddr(a)));
  run = () => syncWith(node, conn, core);
} else {
  run = () => redeemInvite(node, core, code);
}
const start = Date.now();
const out = { settled: false };
const done = run().then(
  () => { out.settled = true; out.outcome = 'success'; },
  (e) => { out.settled = true; out.outcome = `error: ${e.message}`; },
);
await Promise.race([done, new Promise((r) => setTimeout(r, Number(waitMs)))]);
out.ms = Date.now() - start;
console.log(JSON.stringify(out));
process.exit(0);
