// The map page: loads the data and wires the parts together (state, camera, draw loop,
// hover/pin, search, the URL and the panel's controls). Each part lives in its own module.
import { ChunkStore, loadMeta, loadPoints, worldOf } from './data.js';
import { Store } from './state.js';
import { GridIndex } from './picking.js';
import { computeColours, legendFor } from './colours.js';
import { createRenderer } from './renderer.js';
import { Camera } from './camera.js';
import { Labels } from './labels.js';
import { DrawLoop } from './draw.js';
import { Interaction } from './interaction.js';
import { IndexSearch } from './search.js';
import { ResultList, matchesText } from './results.js';
import { stateFromHash, syncUrl } from './url.js';
import { Card, Tooltip, buildFilters, formatNumber, renderLegend } from './ui.js';

const params = new URLSearchParams(location.search);
if (params.get('embed') === '1') document.documentElement.classList.add('map-embedded');

const app = document.getElementById('map-app');
const $ = (selector) => app.querySelector(selector);
const status = $('#map-status');

function setStatus(text, kind = 'info') {
  status.textContent = text;
  status.dataset.kind = kind;
  status.hidden = !text;
}

let markReady, markFailed;
window.__atlasMap = { ready: new Promise((resolve, reject) => { markReady = resolve; markFailed = reject; }) };
window.__atlasMap.ready.catch(() => {});

async function start() {
  const base = app.dataset.data || 'data/';
  const meta = await loadMeta(base);
  setStatus(`Loading ${formatNumber(meta.count)} points…`);
  const points = await loadPoints(base, meta, (f) => setStatus(`Loading ${formatNumber(meta.count)} points… ${Math.round(f * 100)}%`));
  const n = points.count;
  const chunks = new ChunkStore(base, meta);

  const stage = $('.map-stage');
  const renderer = createRenderer($('#map-canvas'), { prefer: params.get('renderer') });
  const canvas = renderer.canvas;
  app.dataset.renderer = renderer.kind;
  renderer.setPoints(points.xy, n, points.xyMax);
  const index = new GridIndex(points.xy, n, points.xyMax);

  const store = new Store({ ...stateFromHash('', meta), hover: -1 });
  store.set(stateFromHash(location.hash, meta), 'hash');

  const rgba = new Uint8Array(n * 4);
  const visible = new Uint8Array(n);
  const matchIndices = new Uint32Array(n);
  let matchCount = 0;

  let interaction = null;
  const camera = new Camera(canvas, store, {
    onHover: (px, py) => interaction.hoverAt(px, py),
    onLeave: () => store.set({ hover: -1 }),
    onClick: (px, py) => { interaction.clickAt(px, py); canvas.focus({ preventScroll: true }); },
  });
  const loop = new DrawLoop({
    renderer, camera, store, labels: new Labels($('.map-labels'), meta), coverage: index.coverage, count: n, stage,
    onFirstFrame: () => { window.__atlasFirstFrame = performance.now(); app.dataset.ready = '1'; },
  });
  interaction = new Interaction({
    store, camera, index, points, visible, chunks, loop, meta,
    tooltip: new Tooltip($('#map-tooltip'), stage),
    card: new Card($('#map-card'), () => store.set({ pinned: -1 })),
  });

  // ------------------------------------------------------------------------- colours, search
  const countEl = $('#map-search-count');
  const searchInput = $('#map-search');
  // Results are ranked by CLIP similarity where the data has it, else by aesthetic score.
  const rankBy = ['similarity', 'aesthetic'].map((name) => meta.scores.find((s) => s.name === name && s.present > 0)).find(Boolean);
  const quality = rankBy ? points.scores.filter((_, j) => j % 4 === rankBy.index) : null;
  const search = new IndexSearch(`${base}search/`, quality, meta.encoding.score_missing);
  const searchReady = search.ready.catch((error) => {
    console.info('atlas map: no search index', error.message);
    searchInput.disabled = true;
    searchInput.placeholder = 'Search is not available for this map';
  });
  let selection = new Uint32Array(0), searching = false, searchToken = 0, typing = false, lastRun = null;
  const list = new ResultList($('#map-results'), {
    load: (id) => chunks.point(id),
    scores: meta.scores.filter((s) => s.present > 0).map((s) => [s.name, s.label]),
    onChoose: (id) => {
      const [x, y] = worldOf(points, id);
      camera.go({ x, y, z: Math.max(store.get('view').z, 3) }, true);
      store.set({ pinned: id });
    },
    onEscape: () => searchInput.focus(),
  });

  /** Highlight the selection's visible points, list them and count them. */
  function updateHighlights() {
    let k = 0;
    for (const i of selection) if (visible[i]) matchIndices[k++] = i;
    matchCount = k;
    renderer.setHighlights(matchIndices, k);
    loop.dim = Boolean(store.get('query')) || selection.length > 0;  // the rest of the map in grey
    list.set(matchIndices.slice(0, k));
    countEl.textContent = store.get('query') || selection.length ? (searching ? 'Searching…' : matchesText(k)) : '';
    countEl.dataset.count = String(k);
    countEl.dataset.done = searching ? '0' : '1';
    loop.redraw();
  }

  function select(ids) {
    selection = Uint32Array.from(ids).filter((i) => i < n);
    updateHighlights();
  }

  /** Run a query (whole words; `prefix` completes the last word while typing) and show it. */
  async function runSearch(query, prefix = false) {
    const token = ++searchToken;
    if (!query) { searching = false; select([]); return { total: 0, ids: [] }; }
    searching = true;
    countEl.dataset.done = '0';
    await searchReady;
    let result;
    try {
      result = await search.search(query, { prefix });
    } catch (error) {
      console.warn('atlas map: search failed', error);
      result = { total: 0, ids: new Uint32Array(0) };
    }
    if (token === searchToken) { searching = false; select(result.ids); }
    return { total: result.total, ids: Array.from(result.ids), bytes: result.bytes };
  }

  function recolour() {
    loop.visible = computeColours(points, meta, store.get(), rgba, visible);
    renderer.setColours(rgba);
    renderLegend($('#map-legend'), legendFor(meta, store.get('colour')));
    $('#map-visible').textContent = loop.visible === n ? '' : `${formatNumber(loop.visible)} of ${formatNumber(n)} points pass the filters`;
    updateHighlights();
  }

  // ------------------------------------------------------------------------- controls
  const colourSelect = $('#map-colour');
  const filters = buildFilters($('#map-filters'), meta, store.get(), (name, range) => {
    if (name === null) { store.set({ filters: {} }); filters.sync({}); return; }
    const next = { ...store.get('filters') };
    if (range) next[name] = range; else delete next[name];
    store.set({ filters: next });
  });
  // Typing searches as you go, completing the last word; Enter searches the whole words typed;
  // the down arrow moves into the results.
  let searchTimer = 0;
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { typing = true; store.set({ query: searchInput.value.trim() }); typing = false; }, 150);
  });
  searchInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      clearTimeout(searchTimer);
      const query = searchInput.value.trim();
      if (query === store.get('query')) runSearch(query); else store.set({ query });
    } else if (event.key === 'ArrowDown' && matchCount) {
      event.preventDefault();
      list.focus();
    }
  });
  colourSelect.addEventListener('change', () => store.set({ colour: colourSelect.value }));
  $('#map-zoom-in').addEventListener('click', () => camera.zoomAbout(camera.width / 2, camera.height / 2, 1));
  $('#map-zoom-out').addEventListener('click', () => camera.zoomAbout(camera.width / 2, camera.height / 2, -1));
  $('#map-zoom-reset').addEventListener('click', () => camera.reset());
  canvas.addEventListener('keydown', (event) => { if (event.key === 'Escape') store.set({ pinned: -1 }); });
  const full = $('#map-open-full');
  if (full) full.href = `./${location.hash}`;

  function syncControls(state, force = false) {
    if (force || document.activeElement !== searchInput) searchInput.value = state.query;
    colourSelect.value = state.colour;
    filters.sync(state.filters);
  }

  // ------------------------------------------------------------------------- state -> everything
  store.on((state, changed, source) => {
    if (changed.includes('colour') || changed.includes('filters')) recolour();
    if (changed.includes('query')) lastRun = runSearch(state.query, typing);
    if (changed.includes('hover')) interaction.showHover(state.hover);
    if (changed.includes('pinned')) interaction.showPinned(state.pinned);
    if (changed.includes('view')) {
      loop.moving();
      if (state.hover >= 0 && camera.pointers.size) store.set({ hover: -1 });
    }
    if (source === 'hash') syncControls(state, true);
    loop.redraw();
  });
  syncUrl(store, meta, (hash) => { if (full) full.href = `./${hash}`; });

  new ResizeObserver(() => loop.resize()).observe(stage);
  syncControls(store.get());
  recolour();
  loop.resize();
  setStatus('');
  if (store.get('query')) lastRun = runSearch(store.get('query'));
  if (store.get('pinned') >= 0) interaction.showPinned(store.get('pinned'));

  // The page's handle for tests and automation (documented in README, "The map page").
  Object.assign(window.__atlasMap, {
    renderer: renderer.kind,
    count: n,
    state: () => JSON.parse(JSON.stringify(store.get())),
    view: () => ({ ...store.get('view') }),
    matches: () => matchCount,
    searching: () => searching,
    visible: () => loop.visible,
    /** Search as the search box does (whole words): { total, ids } ranked, unfiltered. */
    search: (query) => {
      const text = String(query).trim();
      searchInput.value = text;
      if (text === store.get('query')) lastRun = runSearch(text); else store.set({ query: text });
      return lastRun;
    },
    caption: (id) => chunks.point(id).then((info) => info.caption),
    /** The point's nearest neighbours; [] until the build writes neighbours. */
    neighbours: async () => [],
    select: (ids) => { searchToken++; searching = false; select(ids); },
    selection: () => Array.from(selection),
    /** Viewport (client) coordinates of a point given in the projection's raw coordinates. */
    dataToClient(x, y) {
      const b = meta.bounds;
      const [px, py] = camera.toScreen((x - b.x0) / b.span, (y - b.y0) / b.span);
      const rect = canvas.getBoundingClientRect();
      return [rect.left + px, rect.top + py];
    },
  });
  await searchReady;
  markReady();
}

start().catch((error) => {
  markFailed(error);
  console.error('atlas map:', error);
  setStatus(`The map could not be loaded: ${error.message}`, 'error');
});
