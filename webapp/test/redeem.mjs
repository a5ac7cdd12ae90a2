// An independent peer (js-libp2p over TCP, the Ceiba core in WebAssembly)
// redeems an invite code against a real `ceiba daemon`, for the Go test
// TestWebappRedeemsInvite:
//   node redeem.mjs WASM_EXEC_JS CORE_WASM CODE PASSPHRASE
// It prints one JSON object: the fingerprint of the key it made, the
// welcome's network and role, and the view's status.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { redeemInvite } from '../src/invite.js';

// Node 20 lacks Promise.withResolvers, which libp2p 3 uses.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
};

const [wasmExec, wasmPath, code, passphrase] = process.argv.slice(2);
await import(pathToFileURL(wasmExec).href);
const ready = new Promise((resolve) => { globalThis.ceibaCoreReady = resolve; });
const go = new globalThis.Go();
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), go.importObject);
go.run(instance);
await ready;
const core = globalThis.ceibaCore;

const made = core.newIdentity(passphrase);
if (made.error) throw new Error(made.error);
const node = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
});
const out = { fingerprint: made.fingerprint };
try {
  out.welcome = await redeemInvite(node, core, code);
  out.status = JSON.parse(core.status().status);
  out.again = await redeemInvite(node, core, code).then(() => null, (e) => e.message);
} catch (e) {
  out.error = e.message;
}
await node.stop();
console.log(JSON.stringify(out));
process.exit(0);
