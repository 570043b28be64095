/* atlas serve: live reload. `atlas serve` adds this script to the pages it serves (never to the
   built site): it polls the version next to it and reloads the page after a rebuild, or shows
   the rebuild's error over the page. */
(function () {
  var script = document.currentScript;
  var seen = Number(script.dataset.version);
  var versionUrl = new URL('version', script.src).href;
  var box = null;
  function show(error) {
    if (!error) { if (box) { box.remove(); box = null; } return; }
    if (!box) {
      box = document.createElement('pre');
      box.style.cssText = 'position:fixed;left:1rem;right:1rem;bottom:1rem;z-index:99999;margin:0;padding:1rem;' +
        'background:#fff4f4;color:#8a1111;border:2px solid #c33;white-space:pre-wrap;font:14px/1.4 monospace';
      document.body.appendChild(box);
    }
    box.textContent = 'atlas serve: the last rebuild failed\n' + error;
  }
  function poll() {
    fetch(versionUrl, { cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (d.version !== seen && !d.error) { location.reload(); return; }
        show(d.error);
        setTimeout(poll, 700);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 700);
})();
