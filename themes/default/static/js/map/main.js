// The map page: loads the data, wires state, camera, renderer, picking, labels and the panel.
import { ChunkStore, loadMeta, loadPoints } from './data.js';
import { DEFAULT_VIEW, Store, formatHash, parseHash } from './state.js';
import { GridIndex } from './picking.js';
import { computeColours, legendFor } from './colours.js';
import { createRenderer } from './renderer.js';
import { Camera } from './camera.js';
import { Labels } from './labels.js';
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
  renderer.setPoints(points.xy, n);
  const index = new GridIndex(points.xy, n);

  const store = new Store({
    view: { ...DEFAULT_VIEW }, colour: meta.colour_by[0] || '', query: '', filters: {}, pinned: -1, hover: -1,
  });
  store.set(parseHash(location.hash, meta), 'hash');

  const rgba = new Uint8Array(n * 4);
  const visible = new Uint8Array(n);
  const matches = new Uint8Array(n);
  const matchIndices = new Uint32Array(n);
  let visibleCount = n, matchCount = 0, searched = 0, searching = false;

  const labels = new Labels($('.map-labels'), meta);
  const tooltip = new Tooltip($('#map-tooltip'), stage);
  const card = new Card($('#map-card'), () => store.set({ pinned: -1 }));
  const countEl = $('#map-search-count');
  const legendEl = $('#map-legend');

  // --------------------------------------------------------------------------- drawing
  let drawQueued = 0, firstFrame = true, dpr = 1;
  const camera = new Camera(canvas, store, {
    onHover: (px, py) => hoverAt(px, py),
    onLeave: () => { store.set({ hover: -1 }); },
    onClick: (px, py) => {
      const i = pick(px, py);
      store.set({ pinned: i });
      canvas.focus({ preventScroll: true });
    },
  });

  function pointStyle(z) {
    const s = camera.scale(z);
    const area = Math.max(index.coverage, 0.02) * s * s;
    const density = Math.max(visibleCount, 1) / area;
    const size = Math.min(12, Math.max(1.5, Math.sqrt(1.4 / density)));
    const opacity = Math.min(0.92, Math.max(0.1, 1.6 / (density * size * size)));
    return { size, opacity };
  }

  let drawMs = 0, movingUntil = 0, settleTimer = 0;
  function draw() {
    drawQueued = 0;
    const t0 = performance.now();
    const state = store.get();
    const { size, opacity } = pointStyle(state.view.z);
    // Software rendering of a big map: subsample while moving, then draw everything.
    let stride = 1;
    if (renderer.kind === 'canvas2d' && t0 < movingUntil && n > 300_000) {
      stride = Math.ceil(n / 300_000);
      clearTimeout(settleTimer);
      settleTimer = setTimeout(redraw, movingUntil - t0 + 20);
    }
    renderer.draw({
      stride, cx: state.view.x, cy: state.view.y, scale: camera.scale(), dpr, size,
      opacity: Math.min(0.95, opacity * Math.sqrt(stride)),
      dim: Boolean(state.query),
      hover: state.hover, pinned: state.pinned,
    });
    labels.update(camera, state.view.z, false);
    drawMs = drawMs * 0.7 + (performance.now() - t0) * 0.3;
    if (firstFrame) {
      firstFrame = false;
      window.__atlasFirstFrame = performance.now();
      app.dataset.ready = '1';
    }
  }

  function redraw() {
    if (!drawQueued) drawQueued = requestAnimationFrame(draw);
  }

  function resize() {
    dpr = Math.min(window.devicePixelRatio || 1, 3);
    const w = Math.max(1, stage.clientWidth), hgt = Math.max(1, stage.clientHeight);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${hgt}px`;
    renderer.resize(Math.round(w * dpr), Math.round(hgt * dpr));
    camera.resize(w, hgt);
    draw();
  }

  // --------------------------------------------------------------------------- colours, search
  function updateHighlights() {
    let k = 0;
    for (let i = 0; i < n; i++) if (matches[i] && visible[i]) matchIndices[k++] = i;
    matchCount = k;
    renderer.setHighlights(matchIndices, k);
    const query = store.get('query');
    if (!query) countEl.textContent = '';
    else {
      const noun = k === 1 ? 'match' : 'matches';
      const pct = Math.round((100 * searched) / Math.max(1, meta.chunks));
      countEl.textContent = searching ? `${formatNumber(k)} ${noun} so far · ${pct}% searched` : `${formatNumber(k)} ${noun}`;
    }
    countEl.dataset.count = String(k);
    countEl.dataset.done = searching ? '0' : '1';
    redraw();
  }

  function recolour() {
    visibleCount = computeColours(points, meta, store.get(), rgba, visible);
    renderer.setColours(rgba);
    renderLegend(legendEl, legendFor(meta, store.get('colour')));
    $('#map-visible').textContent = visibleCount === n ? '' : `${formatNumber(visibleCount)} of ${formatNumber(n)} points pass the filters`;
    updateHighlights();
  }

  let searchToken = 0, lastHighlight = 0;
  async function runSearch(query) {
    const token = ++searchToken;
    matches.fill(0);
    searched = 0;
    const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!terms.length) { searching = false; updateHighlights(); return; }
    searching = true;
    updateHighlights();
    let next = 0;
    const worker = async () => {
      while (next < meta.chunks) {
        const chunk = next++;
        let captions;
        try { captions = await chunks.captions(chunk); } catch (error) {
          console.warn('atlas map: caption chunk failed', chunk, error);
          captions = [];
        }
        if (token !== searchToken) return;
        const start = chunk * meta.chunk_size;
        for (let j = 0; j < captions.length; j++) {
          const text = captions[j].toLowerCase();
          let ok = true;
          for (const term of terms) if (!text.includes(term)) { ok = false; break; }
          if (ok) matches[start + j] = 1;
        }
        searched++;
        const now = performance.now();
        // Show progress, but never let redraws (slow on software GL) starve the search.
        if (now - lastHighlight > Math.max(250, 6 * drawMs)) { lastHighlight = now; updateHighlights(); }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    if (token !== searchToken) return;
    searching = false;
    updateHighlights();
  }

  // --------------------------------------------------------------------------- picking
  function pick(px, py) {
    const [wx, wy] = camera.toWorld(px, py);
    const { size } = pointStyle(store.get('view').z);
    const radius = Math.max(8, size) / camera.scale();
    return index.nearest(wx, wy, radius, (i) => visible[i] === 1);
  }

  let hoverQueued = 0, hoverAtXY = null;
  function hoverAt(px, py) {
    hoverAtXY = [px, py];
    if (hoverQueued) return;
    hoverQueued = requestAnimationFrame(() => {
      hoverQueued = 0;
      const [x, y] = hoverAtXY;
      const i = pick(x, y);
      store.set({ hover: i });
      if (i >= 0) tooltip.place(x, y);
    });
  }

  async function showHover(i) {
    if (i < 0) { tooltip.hide(); canvas.style.cursor = ''; return; }
    canvas.style.cursor = 'pointer';
    const [x, y] = hoverAtXY || camera.toScreen(points.xy[2 * i] / 65535, points.xy[2 * i + 1] / 65535);
    tooltip.show(i, x, y, null, meta);
    try {
      const info = await chunks.point(i);
      if (store.get('hover') === i) tooltip.show(i, ...(hoverAtXY || [x, y]), info, meta);
    } catch (error) {
      console.warn('atlas map: detail chunk failed', error);
    }
  }

  async function showPinned(i) {
    if (i < 0) { card.hide(); return; }
    card.show(i, null, meta);
    try {
      const info = await chunks.point(i);
      if (store.get('pinned') === i) card.show(i, info, meta);
    } catch (error) {
      console.warn('atlas map: detail chunk failed', error);
    }
  }

  // --------------------------------------------------------------------------- controls
  const search = $('#map-search');
  const colourSelect = $('#map-colour');
  const filters = buildFilters($('#map-filters'), meta, store.get(), (name, range) => {
    if (name === null) { store.set({ filters: {} }); filters.sync({}); return; }
    const next = { ...store.get('filters') };
    if (range) next[name] = range; else delete next[name];
    store.set({ filters: next });
  });
  let searchTimer = 0;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => store.set({ query: search.value.trim() }), 200);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') { clearTimeout(searchTimer); store.set({ query: search.value.trim() }); }
  });
  colourSelect.addEventListener('change', () => store.set({ colour: colourSelect.value }));
  $('#map-zoom-in').addEventListener('click', () => camera.zoomAbout(camera.width / 2, camera.height / 2, 1));
  $('#map-zoom-out').addEventListener('click', () => camera.zoomAbout(camera.width / 2, camera.height / 2, -1));
  $('#map-zoom-reset').addEventListener('click', () => camera.reset());
  canvas.addEventListener('keydown', (event) => { if (event.key === 'Escape') store.set({ pinned: -1 }); });
  const full = $('#map-open-full');
  if (full) full.href = `./${location.hash}`;

  function syncControls(state, force = false) {
    if (force || document.activeElement !== search) search.value = state.query;
    colourSelect.value = state.colour;
    filters.sync(state.filters);
  }

  // --------------------------------------------------------------------------- state -> everything
  let hashTimer = 0, writtenHash = location.hash;
  store.on((state, changed, source) => {
    if (changed.includes('colour') || changed.includes('filters')) recolour();
    if (changed.includes('query')) runSearch(state.query);
    if (changed.includes('hover')) showHover(state.hover);
    if (changed.includes('pinned')) showPinned(state.pinned);
    if (changed.includes('view')) {
      movingUntil = performance.now() + 180;
      if (state.hover >= 0 && camera.pointers.size) store.set({ hover: -1 });
    }
    if (source === 'hash') syncControls(state, true);
    if (changed.some((k) => k !== 'hover')) {
      clearTimeout(hashTimer);
      hashTimer = setTimeout(() => {
        writtenHash = formatHash(store.get(), meta);
        if (writtenHash !== location.hash) history.replaceState(null, '', writtenHash);
        if (full) full.href = `./${writtenHash}`;
      }, 250);
    }
    redraw();
  });
  window.addEventListener('hashchange', () => {
    if (location.hash === writtenHash) return;
    const patch = parseHash(location.hash, meta);
    store.set({
      view: patch.view || { ...DEFAULT_VIEW }, colour: patch.colour || meta.colour_by[0] || '',
      query: patch.query || '', filters: patch.filters || {}, pinned: patch.pinned ?? -1,
    }, 'hash');
  });

  new ResizeObserver(() => resize()).observe(stage);
  syncControls(store.get());
  recolour();
  resize();
  setStatus('');
  if (store.get('query')) runSearch(store.get('query'));
  if (store.get('pinned') >= 0) showPinned(store.get('pinned'));

  // A small read-only handle for tests and the benchmark.
  window.__atlasMap = {
    renderer: renderer.kind,
    count: n,
    state: () => JSON.parse(JSON.stringify(store.get())),
    matches: () => matchCount,
    searching: () => searching,
    visible: () => visibleCount,
    /** Viewport (client) coordinates of a point given in the projection's raw coordinates. */
    dataToClient(x, y) {
      const b = meta.bounds;
      const [px, py] = camera.toScreen((x - b.x0) / b.span, (y - b.y0) / b.span);
      const rect = canvas.getBoundingClientRect();
      return [rect.left + px, rect.top + py];
    },
  };
}

start().catch((error) => {
  console.error('atlas map:', error);
  setStatus(`The map could not be loaded: ${error.message}`, 'error');
});
