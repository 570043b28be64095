// The state <-> the address: the hash is written a moment after the state settles (so a drag
// does not flood the history) and a followed link to another view of the page is applied.
import { DEFAULT_VIEW, formatHash, parseHash } from './state.js';

/** The full state a hash describes (missing parts at their defaults). */
export function stateFromHash(hash, meta) {
  const patch = parseHash(hash, meta);
  return {
    view: patch.view || { ...DEFAULT_VIEW }, colour: patch.colour || meta.colour_by[0] || '',
    query: patch.query || '', mode: patch.mode || 'words', filters: patch.filters || {}, pinned: patch.pinned ?? -1,
    selection: patch.selection || null,
  };
}

/** Keep `location.hash` and the store in step; `onWrite(hash)` after each write. */
export function syncUrl(store, meta, onWrite = () => {}) {
  let timer = 0, written = location.hash;
  store.on((state, changed) => {
    if (!changed.some((k) => k !== 'hover')) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      written = formatHash(store.get(), meta);
      if (written !== location.hash) history.replaceState(null, '', written);
      onWrite(written);
    }, 250);
  });
  window.addEventListener('hashchange', () => {
    if (location.hash !== written) store.set(stateFromHash(location.hash, meta), 'hash');
  });
}
