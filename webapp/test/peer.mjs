// A reader's peer as the web app runs it (js-libp2p over TCP, the Ceiba
// core in WebAssembly), against real `ceiba daemon`s, for the Go test
// TestWebappReaderPeer:
//   node peer.mjs WASM_EXEC_JS CORE_WASM CODE PASSPHRASE SEARCH
// It makes a reader key, redeems the invite code, connects to the inviting
// node again as an admitted reader, and prints one JSON object: the key's
// fingerprint, the welcome, the view's status, the admission's outcome,
// whether the connection outlived a guest's window, what redeeming the
// spent code again answered, what a sync with the inviting node brought
// (and a second one), and what a search for SEARCH finds afterwards.
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { redeemInvite } from '../src/invite.js';
import { Admission } from '../src/admit.js';
import { syncWith } from '../src/sync.js';
import { loadCore } from './core-node.mjs';

const [wasmExec, wasmPath, code, passphrase, searchText] = process.argv.slice(2);
const check = (a) => { if (a.error) throw new Error(a.error); return a; };
const core = await loadCore(wasmExec, wasmPath);

const made = core.newIdentity(passphrase);
if (made.error) throw new Error(made.error);
const node = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
});
const out = { fingerprint: made.fingerprint };
try {
  const { peer, addrs, ...welcome } = await redeemInvite(node, core, code);
  out.welcome = welcome;
  out.status = JSON.parse(core.status().status);
  out.again = await redeemInvite(node, core, code).then(() => null, (e) => e.message);

  const admission = new Admission(node, core, new Set([peer.toString()]));
  await admission.start();
  await node.dial(addrs);
  out.admitted = await admission.admitted(peer).catch((e) => ({ error: e.message }));
  // A peer without a proof is cut after the guest window (10 s): an
  // admitted one is not.
  await new Promise((resolve) => setTimeout(resolve, 12_000));
  out.connectedAfter12s = node.getConnections(peer).length > 0;
  // Pull the directory from the inviting node, then search it offline.
  out.pulled = await syncWith(node, node.getConnections(peer)[0], core);
  out.afterSync = JSON.parse(core.status().status);
  out.results = JSON.parse(check(core.search(JSON.stringify({ text: searchText }))).results);
  out.pulledAgain = await syncWith(node, node.getConnections(peer)[0], core);
} catch (e) {
  out.error = e.message;
}
await node.stop();
console.log(JSON.stringify(out));
process.exit(0);
