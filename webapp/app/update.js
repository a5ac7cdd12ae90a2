// The page's side of the service worker's updates (sw.js): it shows the
// app version running (the SHA-256 of the agreed build.json, which the
// release lists in its signed SHA256SUMS), asks the worker whether the
// host offers another build, and takes one only when the person presses
// "update". It also says so when the worker itself was replaced while the
// page was open, which the browser does without asking anyone.
const $ = (id) => document.getElementById(id);

// ask sends one request to the active worker and waits for its answer.
function ask(worker, msg) {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = (e) => resolve(e.data);
    worker.postMessage(msg, [ch.port2]);
  });
}

// grouped writes a hash in groups of four, easier to compare aloud.
const grouped = (h) => h.match(/.{1,4}/g).join(' ');

export async function watchUpdates() {
  const sw = navigator.serviceWorker;
  if (!sw) return;
  let asked = false;
  const hadController = !!sw.controller;
  sw.addEventListener('controllerchange', () => {
    if (hadController && !asked) $('swChanged').hidden = false;
  });
  await sw.register('sw.js').catch(() => {}); // the app works without it, online
  const reg = await sw.ready;
  const a = await ask(reg.active, { type: 'check' });
  if (a.current) $('version').textContent = grouped(a.current);
  if (!a.offered) return;
  $('offeredVersion').textContent = grouped(a.offered);
  $('update').hidden = false;
  $('takeUpdate').onclick = async () => {
    asked = true;
    const r = await ask(reg.active, { type: 'take', hash: a.offered });
    if (!r.error) location.reload();
  };
  $('skipUpdate').onclick = () => { $('update').hidden = true; };
}
