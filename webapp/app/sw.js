// The app's service worker: it keeps the app's own files (the shell) so
// the app opens with no connection, and the directory kept in IndexedDB
// can still be searched. Network first, so an update is picked up when
// the server is reachable; the cache answers when it is not. It touches
// nothing but this origin's GET requests.
const CACHE = 'ceiba-shell-v1';
const SHELL = ['./', 'app.css', 'app.js', 'wasm_exec.js', 'core.wasm', 'icon.svg', 'manifest.webmanifest'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return;
  const cached = async () => {
    const hit = await caches.match(req, { ignoreSearch: true });
    // A response that came through a redirect (a server sending
    // index.html to ./) cannot answer a navigation as it is.
    return hit?.redirected ? new Response(hit.body, { status: hit.status, headers: hit.headers }) : hit;
  };
  e.respondWith(fetch(req).then(async (res) => {
    if (res.ok) {
      const copy = res.clone();
      // Kept without the query, which may name a node's address.
      const key = new URL(req.url);
      key.search = '';
      caches.open(CACHE).then((c) => c.put(key.href, copy));
      return res;
    }
    return (await cached()) ?? res; // a server in trouble: the kept copy
  }, async () => {
    const hit = await cached();
    if (hit) return hit;
    throw new Error(`${req.url} is not kept for offline use`);
  }));
});
