// Builds the web app into one directory a static web server can serve:
//   node build.mjs OUTDIR CORE_WASM WASM_EXEC_JS
// (make webapp runs it with the core it just compiled). The JavaScript is
// one minified bundle (esbuild, pinned in package.json); the core and Go's
// loader are copied beside it, with index.html and app.css.
//
// Last it writes OUTDIR/build.json, the build's manifest: every file of
// the app with its SHA-256. The service worker takes only files that match
// it, ceiba daemon serves only files that match it, and the release lists
// it in the signed SHA256SUMS; its own SHA-256 is the "app version" the
// page shows, so a person can compare what they run with the release.
//   node build.mjs --manifest DIR   rewrites DIR/build.json only.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The files every build has; app.js.LEGAL.txt (the licences esbuild
// gathers from the bundled packages) is added when esbuild writes it.
const FILES = ['index.html', 'app.css', 'app.js', 'icon.svg', 'sw.js', 'manifest.webmanifest', 'core.wasm', 'wasm_exec.js'];
const LEGAL = 'app.js.LEGAL.txt';

// writeManifest lists the build's files, sorted, as JSON with one file a
// line: the same bytes for the same files on any machine.
export function writeManifest(dir) {
  const names = FILES.concat(existsSync(join(dir, LEGAL)) ? [LEGAL] : []).sort();
  const lines = names.map((n) => `    ${JSON.stringify(n)}: "${createHash('sha256').update(readFileSync(join(dir, n))).digest('hex')}"`);
  const text = `{\n  "version": 1,\n  "files": {\n${lines.join(',\n')}\n  }\n}\n`;
  writeFileSync(join(dir, 'build.json'), text);
  return createHash('sha256').update(text).digest('hex');
}

const args = process.argv.slice(2);
if (args[0] === '--manifest' && args[1]) {
  console.log(writeManifest(args[1]));
  process.exit(0);
}
const [out, wasm, wasmExec] = args;
if (!out || !wasm || !wasmExec) {
  console.error('usage: node build.mjs OUTDIR CORE_WASM WASM_EXEC_JS | node build.mjs --manifest DIR');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(out, { recursive: true });
rmSync(join(out, LEGAL), { force: true }); // a stale one from an earlier build
await build({
  entryPoints: [join(here, 'app', 'app.js')],
  outfile: join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome114', 'firefox115', 'safari17'],
  legalComments: 'external',
  logLevel: 'warning',
});
for (const f of ['index.html', 'app.css', 'icon.svg', 'sw.js', 'manifest.webmanifest']) copyFileSync(join(here, 'app', f), join(out, f));
if (wasm !== join(out, 'core.wasm')) copyFileSync(wasm, join(out, 'core.wasm'));
copyFileSync(wasmExec, join(out, 'wasm_exec.js'));
console.log(`app version (sha-256 of build.json): ${writeManifest(out)}`);
