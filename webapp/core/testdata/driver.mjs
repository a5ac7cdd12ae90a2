// Runs the WebAssembly core under Node as the web app runs it in a
// browser, for core's Go tests: node driver.mjs WASM_EXEC_JS CORE_WASM FIXTURE_JSON
// The fixture names a network, a keystore (hex) and its passphrase, sealed
// records (hex) in the order to feed them, and queries; the driver prints
// one JSON object: what each call answered, the status and the results.
import { readFileSync } from 'node:fs';
import { loadCore } from '../../test/core-node.mjs';

const [wasmExec, wasmPath, fixturePath] = process.argv.slice(2);
const core = await loadCore(wasmExec, wasmPath);
const fixture = JSON.parse(readFileSync(fixturePath, 'utf8'));
const hex = (s) => Uint8Array.from(Buffer.from(s, 'hex'));

const out = { open: { ...core.unlock(hex(fixture.keystore), fixture.passphrase), ...core.open(fixture.network) }, received: [] };
for (const r of fixture.records) {
  const a = core.receive(hex(r));
  out.received.push({ hash: a.hash ?? null, waiting: a.waiting ?? false, error: a.error ?? null });
}
out.badInput = [core.receive('not bytes').error ?? null, core.search('{').error ?? null];
out.status = JSON.parse(core.status().status);
out.results = fixture.queries.map((q) => JSON.parse(core.search(JSON.stringify(q)).results ?? 'null'));
const ks = core.keystore(fixture.passphrase);
out.keystoreBytes = ks.keystore ? ks.keystore.length : 0;
console.log(JSON.stringify(out));
process.exit(0);
