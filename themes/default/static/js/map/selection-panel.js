// Selections on the map: a lasso or box drawn over the canvas (or the current search's matches,
// or ids given to the page's hook) become the selection: highlighted on the map, counted, listed
// in a sortable, paged table (captions fetched for the shown page only), downloadable as CSV.
// A drawn region is kept in the address (r=...), "the search" as s=q, so a selection can be shared.
import { h, formatNumber } from './ui.js';
import { boxPolygon, pageOf, pointsInPolygon, simplify, sortByScore, toCsv } from './selection.js';

const PAGE = 25;
/** Short column heads for the scores (the full label is the button's title). */
const SHORT = { aesthetic: 'Aesth.', similarity: 'CLIP', punsafe: 'Unsafe', pwatermark: 'Wmark' };
const SVG = 'http://www.w3.org/2000/svg';

/** Text of a score byte as its value (or '' when missing). */
export function scoreValue(score, byte, { score_max: top }) {
  if (byte > top) return null;
  return score.min + (byte / top) * (score.max - score.min);
}

export class SelectionPanel {
  constructor({ $, meta, points, chunks, store, camera, visible, onChange, onChoose }) {
    Object.assign(this, { meta, points, chunks, store, camera, visible, onChange, onChoose });
    this.ids = new Uint32Array(0);
    this.sorted = [];
    this.page = 0;
    this.scores = meta.scores.filter((s) => s.present > 0);
    this.sortBy = this.scores[0]?.name || '';
    this.descending = true;
    this.tool = null;
    this.el = $('#map-selection');
    this.countEl = $('#map-selection-count');
    this.table = $('#map-selection-table');
    this.pager = $('#map-selection-pager');
    this.overlay = $('#map-select-overlay');
    this.path = document.createElementNS(SVG, 'path');
    this.path.setAttribute('class', 'map-select-path');
    this.overlay.append(this.path);
    this.buttons = { lasso: $('#map-tool-lasso'), box: $('#map-tool-box') };
    for (const [tool, button] of Object.entries(this.buttons)) {
      button.addEventListener('click', () => this.setTool(this.tool === tool ? null : tool));
    }
    $('#map-select-search').addEventListener('click', () => store.set({ selection: store.get('query') ? { kind: 'search' } : null }));
    $('#map-selection-clear').addEventListener('click', () => store.set({ selection: null }));
    $('#map-selection-csv').addEventListener('click', () => this.download());
    this._bindOverlay();
    this.table.addEventListener('click', (event) => {
      const head = event.target.closest('button[data-sort]');
      if (head) { this.sort(head.dataset.sort); return; }
      const row = event.target.closest('tr[data-id]');
      if (row) this.onChoose(Number(row.dataset.id));
    });
    this.table.addEventListener('keydown', (event) => {
      const row = event.target.closest('tr[data-id]');
      if (row && event.key === 'Enter') { event.preventDefault(); this.onChoose(Number(row.dataset.id)); }
    });
    this.pager.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-page]');
      if (button) { this.page = Number(button.dataset.page); this.render(); }
    });
    this.render();
  }

  /** Choose the drawing tool ('lasso', 'box' or null to pan again). */
  setTool(tool) {
    this.tool = tool;
    this.overlay.classList.toggle('is-active', Boolean(tool));
    for (const [name, button] of Object.entries(this.buttons)) button.setAttribute('aria-pressed', String(name === tool));
  }

  _bindOverlay() {
    const o = this.overlay;
    let trail = null, start = null;
    const local = (event) => {
      const rect = o.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    };
    const draw = (poly) => {
      this.path.setAttribute('d', poly.length ? `M${poly.map((p) => p.join(',')).join('L')}Z` : '');
    };
    o.addEventListener('pointerdown', (event) => {
      if (!this.tool) return;
      event.preventDefault();
      o.setPointerCapture?.(event.pointerId);
      start = local(event);
      trail = [start];
    });
    o.addEventListener('pointermove', (event) => {
      if (!trail) return;
      const p = local(event);
      if (this.tool === 'box') trail = boxPolygon(start, p);
      else trail.push(p);
      draw(trail);
    });
    const end = (event) => {
      if (!trail) return;
      o.releasePointerCapture?.(event.pointerId);
      const screen = simplify(trail, 3);
      trail = null;
      draw([]);
      if (screen.length < 3) return;
      // Rounded as the address keeps it, so a shared link selects exactly these points.
      const world = screen.map(([x, y]) => this.camera.toWorld(x, y).map((v) => Number(v.toFixed(4))));
      this.store.set({ selection: { kind: 'region', polygon: world } });
    };
    o.addEventListener('pointerup', end);
    o.addEventListener('pointercancel', end);
    o.addEventListener('keydown', (event) => { if (event.key === 'Escape') this.setTool(null); });
  }

  /** The points a selection state describes (search matches come from `searchIds`). */
  resolve(selection, searchIds) {
    const p = this.points;
    if (!selection) return new Uint32Array(0);
    if (selection.kind === 'region') return pointsInPolygon(p.xy, p.count, p.xyMax, selection.polygon, (i) => this.visible[i] === 1);
    if (selection.kind === 'search') return Uint32Array.from(searchIds || []);
    if (selection.kind === 'ids') return Uint32Array.from(selection.ids.filter((i) => Number.isInteger(i) && i >= 0 && i < p.count));
    return new Uint32Array(0);
  }

  /** Show these selected ids (map order or ranked). */
  set(ids) {
    this.ids = ids;
    this.page = 0;
    this._sort();
    this.render();
    this.onChange(ids);
  }

  sort(name) {
    if (name === this.sortBy) this.descending = !this.descending;
    else { this.sortBy = name; this.descending = true; }
    this.page = 0;
    this._sort();
    this.render();
  }

  _sort() {
    const score = this.scores.find((s) => s.name === this.sortBy);
    this.sorted = score
      ? sortByScore(this.ids, this.points.scores, 4, score.index, this.meta.encoding.score_max, this.descending)
      : Array.from(this.ids);
  }

  _score(id, score) {
    return scoreValue(score, this.points.scores[id * 4 + score.index], this.meta.encoding);
  }

  render() {
    const n = this.ids.length;
    this.el.dataset.count = String(n);
    this.el.classList.toggle('is-empty', n === 0);
    this.countEl.textContent = n ? `${formatNumber(n)} ${n === 1 ? 'point' : 'points'} selected` : 'Nothing selected: draw a lasso or a box on the map, or select the search results.';
    const { rows, page, pages } = pageOf(this.sorted, this.page, PAGE);
    this.page = page;
    const head = h('tr', {}, h('th', { scope: 'col', text: 'Caption · host' }),
      ...this.scores.map((s) => {
        const on = s.name === this.sortBy;
        const th = h('th', { scope: 'col', 'aria-sort': on ? (this.descending ? 'descending' : 'ascending') : 'none' });
        th.append(h('button', { type: 'button', class: 'map-sort', 'data-sort': s.name, title: `Sort by ${s.label}`,
          text: `${SHORT[s.name] || s.label}${on ? (this.descending ? ' ↓' : ' ↑') : ''}` }));
        return th;
      }));
    const body = h('tbody');
    for (const id of rows) {
      const caption = h('span', { class: 'map-sel-text', text: '…' });
      const host = h('span', { class: 'map-sel-host' });
      const tr = h('tr', { 'data-id': id, tabindex: 0 }, h('td', { class: 'map-sel-caption' }, caption, host),
        ...this.scores.map((s) => {
          const v = this._score(id, s);
          return h('td', { class: 'map-sel-num', text: v === null ? '–' : v.toFixed(2) });
        }));
      body.append(tr);
      this.chunks.point(id).then((info) => {
        caption.textContent = info.caption || '(no caption)';
        host.textContent = info.host || info.domain || '';
      }).catch(() => { caption.textContent = '(caption unavailable)'; });
    }
    this.table.replaceChildren(h('thead', {}, head), body);
    this.table.hidden = n === 0;
    this.pager.replaceChildren();
    if (pages > 1) {
      const button = (label, to, disabled) => h('button', { type: 'button', class: 'map-button', 'data-page': to, disabled, text: label });
      this.pager.append(button('‹ Previous', page - 1, page === 0),
        h('span', { text: `Page ${page + 1} of ${formatNumber(pages)}` }), button('Next ›', page + 1, page >= pages - 1));
    }
  }

  /** The selection as CSV rows (all of them, captions fetched chunk by chunk). */
  async csv() {
    const header = ['point', 'caption', 'url', 'host', ...this.scores.map((s) => s.name)];
    const rows = [];
    for (const id of this.sorted) {
      const info = await this.chunks.point(id);
      rows.push([id, info.caption ?? '', info.url ?? '', info.host ?? info.domain ?? '',
        ...this.scores.map((s) => { const v = this._score(id, s); return v === null ? '' : Number(v.toPrecision(6)); })]);
    }
    return toCsv(header, rows);
  }

  async download() {
    const text = await this.csv();
    const link = h('a', { download: 'atlas-selection.csv' });
    link.href = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }
}
