// Loads the Ceiba core (WebAssembly) in Node.js as a page loads it:
// wasm_exec.js of the Go release that built it, then the module, whose
// API appears on globalThis.ceibaCore. For the Node-side test scripts.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// Node 20 lacks Promise.withResolvers, which libp2p 3 uses.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
};

export async function loadCore(wasmExec, wasmPath) {
  await import(pathToFileURL(wasmExec).href);
  const ready = new Promise((resolve) => { globalThis.ceibaCoreReady = resolve; });
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), go.importObject);
  go.run(instance);
  await ready;
  return globalThis.ceibaCore;
}
