// Optional: adds a "copy" button next to every [data-copy] value. Pages
// work without it; the values are plain selectable text.
(function () {
  var root = document.documentElement;
  var label = root.getAttribute('data-copy-label') || 'Copy';
  var copied = root.getAttribute('data-copied-label') || 'Copied';

  function fallback(text) {
    var t = document.createElement('textarea');
    t.value = text;
    t.setAttribute('readonly', '');
    t.className = 'offscreen';
    document.body.appendChild(t);
    t.select();
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) {}
    document.body.removeChild(t);
    return ok;
  }

  function copy(text, button) {
    function done() {
      button.textContent = copied;
      setTimeout(function () { button.textContent = label; }, 2000);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { if (fallback(text)) done(); });
    } else if (fallback(text)) {
      done();
    }
  }

  var values = document.querySelectorAll('[data-copy]');
  for (var i = 0; i < values.length; i++) {
    (function (el) {
      var b = document.createElement('button');
      b.type = 'button';
      b.className = 'copybtn';
      b.textContent = label;
      b.addEventListener('click', function () { copy(el.textContent, b); });
      el.parentNode.insertBefore(b, el.nextSibling);
    })(values[i]);
  }
})();
