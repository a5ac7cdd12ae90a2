// The app's service worker. It keeps one agreed build of the app (the
// files build.json lists, each checked against its SHA-256) and answers
// every request for the app from that build, with or without a
// connection: cache first, never the host's current files. A new build
// on the host is downloaded and checked in the background when the page
// asks ("check"), kept aside, and served only after the person agrees
// ("take"). What this does and does not protect against: SECURITY.md §6b.
//
// Caches: ceiba-meta holds "current", the agreed build's hash (the
// SHA-256 of its build.json); ceiba-shell-<hash> holds a build's files,
// build.json put last, so a cache holding build.json is complete.
const META = 'ceiba-meta';
const SHELL = 'ceiba-shell-';
const base = new URL('./', self.location).href;
let current = null; // { hash, files } of the agreed build, once read

async function sha256(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

// The host's own address for a file; index.html is asked for as the
// directory, since many servers redirect index.html there.
const fromHost = (name) => (name === 'index.html' ? base : base + name);

async function agreed() {
  if (current) return current;
  const r = await (await caches.open(META)).match('current');
  if (!r) return null;
  const hash = await r.text();
  const m = await (await caches.open(SHELL + hash)).match(base + 'build.json');
  if (!m) return null;
  current = { hash, files: (await m.json()).files };
  return current;
}

// hostBuild reads build.json from the host, bypassing every cache.
async function hostBuild() {
  const res = await fetch(base + 'build.json', { cache: 'no-store', redirect: 'error' });
  if (!res.ok) throw new Error(`build.json: HTTP ${res.status}`);
  const raw = await res.arrayBuffer();
  const files = JSON.parse(new TextDecoder().decode(raw)).files;
  if (!files || typeof files !== 'object' || !files['index.html']) throw new Error('build.json lists no app');
  return { hash: await sha256(raw), raw, files };
}

// download keeps a build's files in its own cache, each checked against
// build.json; a file that does not match leaves no cache behind.
async function download(b) {
  const name = SHELL + b.hash;
  const c = await caches.open(name);
  if (await c.match(base + 'build.json')) return;
  try {
    for (const [f, want] of Object.entries(b.files)) {
      const res = await fetch(fromHost(f), { cache: 'no-store' });
      const body = await res.arrayBuffer();
      if (!res.ok) throw new Error(`${f}: HTTP ${res.status}`);
      if (await sha256(body) !== want) throw new Error(`${f} does not match build.json ${b.hash}`);
      // The host's headers are kept (its Content-Security-Policy above
      // all), except those that described the bytes on the wire.
      const headers = new Headers(res.headers);
      for (const h of ['content-encoding', 'content-length', 'transfer-encoding']) headers.delete(h);
      await c.put(base + f, new Response(body, { status: 200, headers }));
    }
    await c.put(base + 'build.json', new Response(b.raw, { headers: { 'Content-Type': 'application/json' } }));
  } catch (e) {
    await caches.delete(name);
    throw e;
  }
}

async function agree(hash) {
  const c = await caches.open(SHELL + hash);
  if (!(await c.match(base + 'build.json'))) throw new Error(`build ${hash} is not downloaded`);
  await (await caches.open(META)).put('current', new Response(hash));
  current = null;
  for (const k of await caches.keys()) {
    if (k.startsWith(SHELL) && k !== SHELL + hash) await caches.delete(k);
  }
}

self.addEventListener('install', (e) => {
  // The first install trusts the host once (there is nothing to compare
  // with); a new service worker keeps the build already agreed.
  e.waitUntil((async () => {
    if (!(await agreed())) {
      const b = await hostBuild();
      await download(b);
      await agree(b.hash);
    }
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('message', (e) => {
  const port = e.ports[0];
  if (!port) return;
  e.waitUntil((async () => {
    const cur = await agreed();
    try {
      if (e.data?.type === 'check') {
        const b = await hostBuild();
        if (cur && b.hash !== cur.hash) {
          await download(b);
          port.postMessage({ current: cur.hash, offered: b.hash });
        } else {
          port.postMessage({ current: cur?.hash });
        }
      } else if (e.data?.type === 'take') {
        await agree(e.data.hash);
        port.postMessage({ current: e.data.hash });
      }
    } catch (err) {
      port.postMessage({ current: cur?.hash, error: String(err?.message ?? err) });
    }
  })());
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET' || !req.url.startsWith(base)) return;
  const url = new URL(req.url);
  const name = url.pathname.slice(new URL(base).pathname.length) || 'index.html';
  e.respondWith((async () => {
    const cur = await agreed();
    if (!cur) return fetch(req); // not installed yet: the host's files
    // Once installed, nothing of the app's scope comes from the host:
    // a file the agreed build does not list is not the app's.
    if (!(name in cur.files) && name !== 'build.json') {
      return new Response(`${name} is not part of this app's build`, { status: 404 });
    }
    const hit = await (await caches.open(SHELL + cur.hash)).match(base + name);
    return hit ?? new Response(`${name} is missing from the kept app: erase and reinstall it`, { status: 500 });
  })());
});
