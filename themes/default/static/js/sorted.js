// The score-sorted lists' thumbnails (templates/sorted.html): a hot-linked image gets a loading
// and an "image unavailable" state, as on the map. Loaded in <head>, before the images: load and
// error do not bubble, so they are caught on the way down (capture), however early they fire.
// Nothing else runs here; the list reads the same without it.
(() => {
  const thumb = (event) => {
    const img = event.target;
    return img instanceof HTMLImageElement && img.parentElement?.classList.contains('sorted-thumb') ? img : null;
  };
  const unavailable = (img) => {
    const box = img.parentElement;
    box.classList.remove('is-loading');
    box.classList.add('is-unavailable');
    const note = box.querySelector('.sorted-thumb-note');
    if (note) note.textContent = 'image unavailable';
    img.remove();
  };
  document.addEventListener('load', (event) => {
    const img = thumb(event);
    if (!img) return;
    if (!img.naturalWidth) unavailable(img);
    else img.parentElement.classList.remove('is-loading');
  }, true);
  document.addEventListener('error', (event) => {
    const img = thumb(event);
    if (img) unavailable(img);
  }, true);
})();
