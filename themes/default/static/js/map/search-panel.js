// The search box, its result list and the highlighted matches: typing searches as you go
// (completing the last word), Enter searches the whole words typed, the down arrow moves into the
// results, and choosing a result flies to the point and pins it.
import { IndexSearch } from './search.js';
import { ResultList, matchesText } from './results.js';

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
  constructor({ $, base, meta, points, chunks, store, camera, renderer, loop, visible, onChoose, onUpdate }) {
    Object.assign(this, { store, renderer, loop, visible, onUpdate, n: points.count });
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
    this.ready = this.search.ready.catch((error) => {
      console.info('atlas map: no search index', error.message);
      this.input.disabled = true;
      this.input.placeholder = 'Search is not available for this map';
    });
    this.list = new ResultList($('#map-results'), {
      load: (id) => chunks.point(id),
      scores: meta.scores.filter((s) => s.present > 0).map((s) => [s.name, s.label]),
      onChoose,
      onEscape: () => this.input.focus(),
    });
    let timer = 0;
    this.input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { this.typing = true; store.set({ query: this.input.value.trim() }); this.typing = false; }, 150);
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

  /** Search the whole words of `query` (as Enter does); resolves to { total, ids, bytes }. */
  submit(query) {
    const text = String(query).trim();
    this.input.value = text;
    if (text === this.store.get('query')) this.lastRun = this.run(text);
    else this.store.set({ query: text });  // the page's store listener calls queryChanged
    return this.lastRun;
  }

  /** The query in the store changed (typed, submitted, or from the address). */
  queryChanged(query) {
    this.lastRun = this.run(query, this.typing);
  }

  /** Run a query (`prefix` completes the last word) and show its matches. */
  async run(query, prefix = false) {
    const token = ++this.token;
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
    this.countEl.textContent = active ? (this.searching ? 'Searching…' : matchesText(k)) : '';
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
