// Builds the web app into one directory a static web server can serve:
//   node build.mjs OUTDIR CORE_WASM WASM_EXEC_JS
// (make webapp runs it with the core it just compiled). The JavaScript is
// one minified bundle (esbuild, pinned in package.json); the core and Go's
// loader are copied beside it, with index.html and app.css.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [out, wasm, wasmExec] = process.argv.slice(2);
if (!out || !wasm || !wasmExec) {
  console.error('usage: node build.mjs OUTDIR CORE_WASM WASM_EXEC_JS');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(out, { recursive: true });
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
copyFileSync(wasm, join(out, 'core.wasm'));
copyFileSync(wasmExec, join(out, 'wasm_exec.js'));
