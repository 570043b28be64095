// The map page: loads the data and wires the parts together (state, camera, draw loop,
// hover/pin, search, the URL and the panel's controls). Each part lives in its own module.
import { ChunkStore, loadLengths, loadMeta, loadPoints } from './data.js';
import { Store } from './state.js';
import { GridIndex } from './picking.js';
import { clusterPalette, computeColours, legendFor, quantileLut } from './colours.js';
import { histogram } from './selection.js';
import { createRenderer } from './renderer.js';
import { Camera } from './camera.js';
import { Labels } from './labels.js';
import { DrawLoop } from './draw.js';
import { Interaction } from './interaction.js';
import { SearchPanel } from './search-panel.js';
import { SelectionPanel } from './selection-panel.js';
import { Crossfilter } from './crossfilter.js';
import { Neighbours } from './neighbours.js';
import { Toc } from './toc.js';
import { DensityLayer } from './density.js';
import { worldOf } from './data.js';
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

  let interaction = null;
  const embedded = document.documentElement.classList.contains('map-embedded');
  const camera = new Camera(canvas, store, {
    onHover: (px, py) => interaction.hoverAt(px, py),
    onLeave: () => store.set({ hover: -1 }),
    onClick: (px, py) => { interaction.clickAt(px, py); canvas.focus({ preventScroll: true }); },
    wheelNeedsActivation: embedded,
    hint: $('#map-wheel-hint'),
  });
  const labels = new Labels($('.map-labels'), meta);
  let markFirstFrame;
  const firstFrame = new Promise((resolve) => { markFirstFrame = resolve; });
  const loop = new DrawLoop({
    renderer, camera, store, labels, coverage: index.coverage, count: n, stage,
    onFirstFrame: () => { window.__atlasFirstFrame = performance.now(); app.dataset.ready = '1'; markFirstFrame(); },
  });
  /** Fly to a point and pin it (a result, a neighbour, a table row). */
  const flyTo = (id) => {
    const [x, y] = worldOf(points, id);
    camera.go({ x, y, z: Math.max(store.get('view').z, 3) }, true);
    store.set({ pinned: id });
  };
  const neighbours = new Neighbours(base, meta.neighbours, n);
  interaction = new Interaction({
    store, camera, index, points, visible, chunks, loop, meta, neighbours, onWalk: flyTo,
    tooltip: new Tooltip($('#map-tooltip'), stage),
    card: new Card($('#map-card'), () => store.set({ pinned: -1 })),
  });

  // ------------------------------------------------------------------------- colours, search
  let selection = null, crossfilter = null;
  const search = new SearchPanel({
    $, base, meta, points, chunks, store, camera, renderer, loop, visible, onChoose: flyTo, firstFrame,
    onUpdate: () => { if (selection && store.get('selection')?.kind === 'search') applySelection(); },
  });
  selection = new SelectionPanel({
    $, meta, points, chunks, store, camera, visible, onChoose: flyTo,
    onChange: (ids) => {
      search.highlight = store.get('selection') ? ids : null;
      search.paint();
      crossfilter?.update(store.get('filters'), store.get('selection') ? ids : null);
    },
  });
  /** Work out the selection's points again (it changed, or the filters or the matches did). */
  function applySelection() {
    selection.set(selection.resolve(store.get('selection'), search.matches()));
  }

  // Colours that agree with the labels: clusters are coloured at the level whose labels are shown
  // (finer levels in their parent's hue); scores on a ramp fitted to their distribution.
  const palette = clusterPalette(meta, points);
  const fitted = {};
  const colourOptions = () => {
    const colour = store.get('colour');
    const score = meta.scores.find((s) => s.name === colour && s.present > 0);
    if (score && !fitted[colour]) {
      const top = meta.encoding.score_max;
      fitted[colour] = quantileLut(histogram(points.scores, 4, score.index, top, top + 1), meta.encoding);
    }
    return { level: labels.levelAt(store.get('view').z)?.name, palette, fitted };
  };
  let colouredLevel = null;
  /** Colour the points and redo the legend; `levelOnly`: only the cluster level changed (nothing else to recount). */
  function recolour(levelOnly = false) {
    const options = colourOptions();
    colouredLevel = store.get('colour') === 'cluster' ? options.level : null;
    labels.palette = colouredLevel ? palette : null;
    loop.visible = computeColours(points, meta, store.get(), rgba, visible, options);
    renderer.setColours(rgba);
    renderLegend($('#map-legend'), legendFor(meta, store.get('colour'), options));
    if (levelOnly) return;
    $('#map-visible').textContent = loop.visible === n ? '' : `${formatNumber(loop.visible)} of ${formatNumber(n)} points pass the filters`;
    search.update();
    applySelection();
  }

  new Toc($('#map-toc'), {
    meta, points, palette, chunks, onChoose: flyTo,
    // Zoom where that level's labels show (levels change every 2 zoom steps from 1.5).
    onFly: (x, y, depth) => camera.go({ x, y, z: depth === 0 ? 1 : 2 * depth + 0.5 }, true),
  });

  // ------------------------------------------------------------------------- controls
  const colourSelect = $('#map-colour');
  const filters = buildFilters($('#map-filters'), meta, store.get(), (name, range) => {
    if (name === null) { store.set({ filters: {} }); filters.sync({}); return; }
    const next = { ...store.get('filters') };
    if (range) next[name] = range; else delete next[name];
    store.set({ filters: next });
  });
  colourSelect.addEventListener('change', () => store.set({ colour: colourSelect.value }));
  $('#map-zoom-in').addEventListener('click', () => camera.zoomAbout(camera.width / 2, camera.height / 2, 1));
  $('#map-zoom-out').addEventListener('click', () => camera.zoomAbout(camera.width / 2, camera.height / 2, -1));
  $('#map-zoom-reset').addEventListener('click', () => camera.reset());
  canvas.addEventListener('keydown', (event) => { if (event.key === 'Escape') store.set({ pinned: -1 }); });
  const sheet = $('#map-sheet-toggle');
  sheet.addEventListener('click', () => sheet.setAttribute('aria-expanded', String(app.classList.toggle('is-sheet-open'))));
  const full = $('#map-open-full');
  if (full) full.href = `./${location.hash}`;

  function syncControls(state, force = false) {
    if (force || document.activeElement !== search.input) search.input.value = state.query;
    search.syncMode();
    colourSelect.value = state.colour;
    filters.sync(state.filters);
  }

  // ------------------------------------------------------------------------- state -> everything
  store.on((state, changed, source) => {
    if (changed.includes('colour') || changed.includes('filters')) recolour();
    if (changed.includes('filters') && !store.get('selection')) crossfilter?.update(state.filters, null);
    if (changed.includes('query') || changed.includes('mode')) search.queryChanged(state.query);
    if (changed.includes('selection')) applySelection();
    if (changed.includes('hover')) interaction.showHover(state.hover);
    if (changed.includes('pinned')) interaction.showPinned(state.pinned);
    if (changed.includes('view')) {
      loop.moving();
      if (colouredLevel && labels.levelAt(state.view.z)?.name !== colouredLevel) recolour(true);
      if (state.hover >= 0 && camera.pointers.size) store.set({ hover: -1 });
      else interaction.repick();  // the tooltip closes when its point leaves the cursor
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
  // The histograms and the density field count every point: after the first frame is on screen.
  setTimeout(async () => {
    loop.density = new DensityLayer($('#map-density'), points);
    loop.redraw();
    points.lengths = await loadLengths(base, meta).catch(() => null);
    if (points.lengths && store.get('filters')?.caption_length) recolour();
    crossfilter = new Crossfilter($('#map-crossfilter'), {
      meta, points, onBrush: (name, range) => {
        const next = { ...store.get('filters') };
        if (range) next[name] = range; else delete next[name];
        store.set({ filters: next });
      },
    });
    crossfilter.update(store.get('filters'), store.get('selection') ? selection.ids : null);
  }, 0);
  if (store.get('query')) search.queryChanged(store.get('query'));
  if (store.get('pinned') >= 0) interaction.showPinned(store.get('pinned'));

  // The page's handle for tests and automation (documented in README, "The map page").
  Object.assign(window.__atlasMap, {
    renderer: renderer.kind,
    count: n,
    state: () => JSON.parse(JSON.stringify(store.get())),
    view: () => ({ ...store.get('view') }),
    matches: () => search.count,
    searching: () => search.searching,
    visible: () => loop.visible,
    /** Search as the search box does (whole words): { total, ids } ranked, unfiltered. */
    search: (query) => search.submit(query, 'words'),
    /** Search by meaning, as the box does in that mode: { ids, scores (cosine), at ([x, y] where the
     * words land, in the projection's raw coordinates) }, best first, unfiltered; { error } when the
     * model cannot run. */
    searchMeaning: (text, k) => search.submitMeaning(text, k).then((r) => ({ ...r, at: r.at ? rawOf(r.at) : null })),
    caption: (id) => chunks.point(id).then((info) => info.caption),
    /** The point's nearest neighbours in embedding space, nearest first; [] when the build wrote none. */
    neighbours: (id) => neighbours.of(id),
    hasNeighbours: neighbours.available,
    /** Select these points (as a lasso would): highlighted, counted and listed in the table. */
    select: (ids) => store.set({ selection: { kind: 'ids', ids: Array.from(ids, Number) } }),
    /** The selected points (map order for a region, ranked for the search). */
    selection: () => Array.from(selection.ids),
    /** The selection as the CSV the download button saves. */
    selectionCsv: () => selection.csv(),
    /** Where the ring of the last search by meaning is on the screen (client coordinates), or null. */
    meaningMarker: () => {
      const el = $('#map-meaning-marker');
      if (!el || el.hidden) return null;
      const r = el.getBoundingClientRect();
      return [r.left + r.width / 2, r.top + r.height / 2];
    },
    /** Viewport (client) coordinates of a point given in the projection's raw coordinates. */
    dataToClient(x, y) {
      const b = meta.bounds;
      const [px, py] = camera.toScreen((x - b.x0) / b.span, (y - b.y0) / b.span);
      const rect = canvas.getBoundingClientRect();
      return [rect.left + px, rect.top + py];
    },
  });
  /** World coordinates ([0, 1] square) back to the projection's raw ones. */
  function rawOf([wx, wy]) {
    const b = meta.bounds;
    return [b.x0 + wx * b.span, b.y0 + wy * b.span];
  }
  await search.ready;
  markReady();
}

start().catch((error) => {
  markFailed(error);
  console.error('atlas map:', error);
  setStatus(`The map could not be loaded: ${error.message}`, 'error');
});
