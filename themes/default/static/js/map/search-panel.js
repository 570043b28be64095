// The search box, its result list and the highlighted matches: typing searches as you go
// (completing the last word), Enter searches the whole words typed, the down arrow moves into the
// results, and choosing a result flies to the point and pins it. In the "meaning" mode the words
// are embedded in the browser instead (meaning.js) and the closest points are the matches.
import { IndexSearch } from './search.js';
import { ResultList, matchesText } from './results.js';
import { MEANING_K, MeaningMarker, MeaningSearch, closenessWords, placeText } from './meaning.js';
import { worldOf } from './data.js';
import { formatNumber } from './ui.js';

const HINTS = {
  words: 'Whole words, all of them; "quotes" for a phrase. The last word is completed as you type; '
    + '<kbd>Enter</kbd> searches the words as typed, <kbd>↓</kbd> reaches the results, <kbd>Enter</kbd> flies to one.',
  meaning: 'Describe what you look for in your own words: the captions closest in meaning are listed and a ring '
    + 'marks where your words land. The model runs in this browser (about {size} the first time); nothing you type leaves it.',
};
const PLACEHOLDERS = { words: 'e.g. watercolor landscape, "red dress"', meaning: 'e.g. a small dog asleep on a sofa' };

/** A score byte per point to rank matches by: CLIP similarity where present, else aesthetic. */
export function rankingBytes(meta, points) {
  const score = ['similarity', 'aesthetic'].map((name) => meta.scores.find((s) => s.name === name && s.present > 0)).find(Boolean);
  if (!score) return null;
  const stride = meta.scores.length, out = new Uint8Array(points.count);
  for (let i = 0; i < points.count; i++) out[i] = points.scores[i * stride + score.index];
  return out;
}

export class SearchPanel {
  /** `onUpdate()` runs after the matches shown change (a selection "the search" follows them). */
  constructor({ $, base, meta, points, chunks, store, camera, renderer, loop, visible, onChoose, onUpdate, firstFrame }) {
    Object.assign(this, { store, camera, renderer, loop, visible, onUpdate, points, n: points.count });
    this.firstFrame = firstFrame || Promise.resolve();
    /** Points highlighted instead of the matches (a selection), or null. */
    this.highlight = null;
    this.input = $('#map-search');
    this.countEl = $('#map-search-count');
    this.indices = new Uint32Array(points.count);
    this.selection = new Uint32Array(0);
    this.count = 0;
    this.searching = false;
    this.token = 0;
    this.typing = false;
    this.lastRun = Promise.resolve({ total: 0, ids: [] });
    this.search = new IndexSearch(`${base}search/`, rankingBytes(meta, points), meta.encoding.score_missing);
    this.wordsAvailable = true;
    this.ready = this.search.ready.catch((error) => {
      console.info('atlas map: no search index', error.message);
      this.wordsAvailable = false;
      this.syncMode();
    });
    // ------------------------------------------------------------------ by meaning
    this.meaning = new MeaningSearch();
    this.marker = new MeaningMarker($('#map-meaning-marker'));
    loop.overlays.push(this.marker);
    this.k = MEANING_K;
    /** The last search by meaning's closeness per point (shown in the result rows). */
    this.closeness = new Map();
    /** A reader's message standing in for the count (the model failed, or is not available). */
    this.message = '';
    this.hint = $('#map-search-help');
    this.modeInputs = Array.from($('#map-search-mode')?.querySelectorAll('input[name="map-mode"]') || []);
    for (const radio of this.modeInputs) {
      radio.addEventListener('change', () => {
        if (!radio.checked) return;
        if (radio.value === 'meaning' && !this.meaning.available) {  // say why, stay with words
          this.modeInputs.forEach((r) => { r.checked = r.value === 'words'; });
          this.showMessage(this.meaning.reason, 'unavailable');
          return;
        }
        store.set({ mode: radio.value });
      });
    }
    this.list = new ResultList($('#map-results'), {
      load: (id) => chunks.point(id),
      scores: meta.scores.filter((s) => s.present > 0).map((s) => [s.name, s.label]),
      onChoose,
      onEscape: () => this.input.focus(),
      note: (id) => {
        const score = this.closeness.get(id);
        return score === undefined ? '' : `${closenessWords(score)} in meaning (${score.toFixed(2)})`;
      },
    });
    let timer = 0;
    this.input.addEventListener('input', () => {
      clearTimeout(timer);
      const wait = this.mode() === 'meaning' ? 400 : 150;  // a meaning is read once the reader pauses
      timer = setTimeout(() => { this.typing = true; store.set({ query: this.input.value.trim() }); this.typing = false; }, wait);
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        clearTimeout(timer);
        this.submit(this.input.value);
      } else if (event.key === 'ArrowDown' && this.count) {
        event.preventDefault();
        this.list.focus();
      }
    });
  }

  mode() {
    return this.store.get('mode') === 'meaning' ? 'meaning' : 'words';
  }

  /** Search the whole words of `query` (as Enter does); resolves to { total, ids, bytes }. */
  submit(query, mode = this.mode()) {
    const text = String(query ?? '').trim();
    this.input.value = text;
    if (text === this.store.get('query') && mode === this.mode()) this.lastRun = this.run(text);
    else this.store.set({ query: text, mode });  // the page's store listener calls queryChanged
    return this.lastRun;
  }

  /** Search by meaning (window.__atlasMap.searchMeaning): resolves to { ids, scores, at } or { error }. */
  submitMeaning(text, k = MEANING_K) {
    this.k = Math.max(1, Math.min(1000, Math.floor(Number(k)) || MEANING_K));
    return this.submit(text, 'meaning');
  }

  /** The query or the mode in the store changed (typed, submitted, or from the address). */
  queryChanged(query) {
    this.syncMode();
    this.lastRun = this.run(query, this.typing);
  }

  /** The box, its hint and the mode buttons as the mode (and what is available) says. */
  syncMode() {
    const mode = this.mode();
    for (const radio of this.modeInputs) radio.checked = radio.value === mode;
    this.input.placeholder = mode === 'words' && !this.wordsAvailable ? 'Search by words is not available for this map' : PLACEHOLDERS[mode];
    this.input.disabled = mode === 'words' && !this.wordsAvailable;
    this.input.dataset.mode = mode;
    if (this.hint) this.hint.innerHTML = HINTS[mode].replace('{size}', this.hint.dataset.modelSize || 'a few MB');
    if (mode !== 'meaning') { this.marker.set(null); this.closeness.clear(); }
  }

  /** A reader's message in place of the count until the next search. */
  showMessage(text, code = 'error') {
    this.message = text;
    this.countEl.textContent = text;
    this.countEl.dataset.error = code;
    this.countEl.dataset.done = '1';
  }

  /** Run a query (`prefix` completes the last word) and show its matches. */
  async run(query, prefix = false) {
    const token = ++this.token;
    this.message = '';
    delete this.countEl.dataset.error;
    if (this.mode() === 'meaning') return this.runMeaning(query, token);
    if (!query) { this.searching = false; this.select([]); return { total: 0, ids: [] }; }
    this.searching = true;
    this.countEl.dataset.done = '0';
    await this.ready;
    let result;
    try {
      result = await this.search.search(query, { prefix });
    } catch (error) {
      console.warn('atlas map: search failed', error);
      result = { total: 0, ids: new Uint32Array(0) };
    }
    if (token === this.token) { this.searching = false; this.select(result.ids); }
    return { total: result.total, ids: Array.from(result.ids), bytes: result.bytes };
  }

  /** The points nearest in meaning to `query`: listed, highlighted, the ring placed, the view flown there. */
  async runMeaning(query, token) {
    this.closeness.clear();
    this.marker.set(null);
    if (!query) { this.searching = false; this.select([]); return { ids: [], scores: [] }; }
    this.searching = true;
    this.select([]);
    this.countEl.textContent = this.meaning.loaded ? 'Reading your words…' : 'Loading the caption model…';
    this.countEl.dataset.done = '0';
    await this.firstFrame;  // the model is never fetched before the map is on screen
    let result;
    try {
      result = await this.meaning.nearest(query, this.k);
    } catch (error) {
      if (token !== this.token) return { ids: [], scores: [], error: error.message };
      this.searching = false;
      this.select([]);
      const more = error.code === 'empty' || error.code === 'unavailable' || !this.wordsAvailable ? '' : ' Search by words still works.';
      this.showMessage(`${error.message}${more}`, error.code || 'error');
      return { ids: [], scores: [], error: error.message };
    }
    const at = placeText(result.ids, result.scores, (id) => worldOf(this.points, id));
    if (token === this.token) {
      this.searching = false;
      result.ids.forEach((id, i) => this.closeness.set(id, result.scores[i]));
      this.marker.set(at);
      this.select(result.ids);
      if (at) this.camera.go({ x: at[0], y: at[1], z: Math.max(this.store.get('view').z, 1.5) }, true);
    }
    return { ids: result.ids, scores: result.scores, at };
  }

  /** Highlight, list and count these points (ranked order kept). */
  select(ids) {
    this.selection = Uint32Array.from(ids).filter((i) => i < this.n);
    this.update();
  }

  /** Show the selection's points that pass the filters; call again after the filters change. */
  update() {
    let k = 0;
    for (const i of this.selection) if (this.visible[i]) this.indices[k++] = i;
    this.count = k;
    this.paint();
    this.list.set(this.indices.slice(0, k));
    const active = this.store.get('query') || this.selection.length;
    if (this.message) this.countEl.textContent = this.message;
    else if (this.searching && this.mode() === 'meaning') { /* runMeaning says what it is doing */ }
    else if (this.mode() === 'meaning' && active) this.countEl.textContent = `${formatNumber(k)} closest in meaning`;
    else this.countEl.textContent = active ? (this.searching ? 'Searching…' : matchesText(k)) : '';
    this.countEl.dataset.count = String(k);
    this.countEl.dataset.done = this.searching ? '0' : '1';
    this.onUpdate?.();
  }

  /** The current matches (ids that pass the filters, ranked). */
  matches() {
    return this.indices.slice(0, this.count);
  }

  /** Highlight the selection if there is one, else the matches; the rest of the map in grey. */
  paint() {
    if (this.highlight) this.renderer.setHighlights(this.highlight, this.highlight.length);
    else this.renderer.setHighlights(this.indices, this.count);
    this.loop.dim = Boolean(this.highlight) || Boolean(this.store.get('query')) || this.selection.length > 0;
    this.loop.redraw();
  }
}
