// The DOM around the canvas: legend, score filters, hover tooltip, pinned card, search count.
// Data (captions, hosts, URLs) only ever reaches the DOM through textContent and DOM properties.
import { imageUrl, safeUrl } from './data.js';

const fmt = new Intl.NumberFormat('en');

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

export function formatNumber(n) {
  return fmt.format(n);
}

function formatScore(value, name) {
  if (value === null || value === undefined) return '–';
  if (name === 'punsafe' || name === 'pwatermark') return value.toFixed(3);
  return value.toFixed(2);
}

// ----------------------------------------------------------------------------- legend

export function renderLegend(el, legend, { limit = 14 } = {}) {
  el.replaceChildren();
  if (legend.kind === 'none') return;
  el.append(h('h2', { class: 'map-legend-title', text: legend.title }));
  if (legend.kind === 'categorical') {
    const list = h('ul', { class: 'map-legend-list' });
    const shown = legend.items.slice(0, limit);
    for (const item of shown) {
      const swatch = h('span', { class: 'map-swatch', 'aria-hidden': 'true' });
      swatch.style.background = item.colour;
      list.append(h('li', {}, swatch, h('span', { class: 'map-legend-label', text: item.label, title: item.label }),
        h('span', { class: 'map-legend-count', text: formatNumber(item.count) })));
    }
    el.append(list);
    if (legend.items.length > shown.length) {
      el.append(h('p', { class: 'map-legend-more', text: `+ ${legend.items.length - shown.length} more` }));
    }
  } else {
    const bar = h('div', { class: 'map-ramp', 'aria-hidden': 'true' });
    bar.style.background = legend.gradient;
    const missing = h('span', { class: 'map-swatch', 'aria-hidden': 'true' });
    missing.style.background = legend.missing;
    const ticks = legend.ticks || [legend.min, legend.max];
    el.append(bar, h('div', { class: 'map-ramp-scale' }, ...ticks.map((v) => h('span', { text: formatScore(v, legend.name) }))));
    if (legend.fitted) el.append(h('p', { class: 'map-legend-more', text: 'Fitted to the data: each quarter of the ramp holds a quarter of the points.' }));
    el.append(h('p', { class: 'map-legend-missing' }, missing, h('span', { text: 'no value' })));
  }
}

// ----------------------------------------------------------------------------- filters

/** Two sliders (min, max) per score the data has; onChange(name, [lo, hi] | null). */
export function buildFilters(container, meta, state, onChange) {
  const body = container.querySelector('.map-filters-body');
  body.replaceChildren();
  const controls = {};
  const top = meta.encoding.score_max;  // the sliders step through the stored score bytes
  for (const score of meta.scores.filter((s) => s.present > 0)) {
    const id = `map-filter-${score.name}`;
    const value = h('output', { class: 'map-filter-value', for: `${id}-min ${id}-max` });
    const make = (which) => h('input', {
      type: 'range', id: `${id}-${which}`, min: 0, max: top, step: 1,
      'aria-label': `${score.label} ${which === 'min' ? 'minimum' : 'maximum'}`,
    });
    const lo = make('min'), hi = make('max');
    const toRaw = (q) => score.min + (q / top) * (score.max - score.min);
    const toQ = (raw) => Math.round(((raw - score.min) / (score.max - score.min || 1)) * top);
    const show = () => { value.textContent = `${formatScore(toRaw(+lo.value), score.name)} – ${formatScore(toRaw(+hi.value), score.name)}`; };
    const set = (range) => {
      lo.value = String(range ? toQ(range[0]) : 0);
      hi.value = String(range ? toQ(range[1]) : top);
      show();
    };
    const changed = (which) => {
      if (+lo.value > +hi.value) (which === 'min' ? hi : lo).value = (which === 'min' ? lo : hi).value;
      show();
      const full = +lo.value === 0 && +hi.value === top;
      onChange(score.name, full ? null : [toRaw(+lo.value), toRaw(+hi.value)]);
    };
    lo.addEventListener('input', () => changed('min'));
    hi.addEventListener('input', () => changed('max'));
    set(state.filters?.[score.name]);
    body.append(h('div', { class: 'map-filter' },
      h('div', { class: 'map-filter-head' }, h('span', { class: 'map-filter-name', text: score.label }), value),
      h('div', { class: 'map-filter-sliders' }, lo, hi)));
    controls[score.name] = set;
  }
  const reset = h('button', { type: 'button', class: 'map-button map-filter-reset', text: 'Clear filters' });
  reset.addEventListener('click', () => onChange(null, null));
  body.append(reset);
  if (!Object.keys(controls).length) container.hidden = true;
  return {
    sync(filters) {
      for (const [name, set] of Object.entries(controls)) set(filters?.[name]);
    },
  };
}

// ----------------------------------------------------------------------------- point info

/** An image from the row's URL with loading and "image unavailable" states (none for demo rows). */
function thumbnail(url, large, demo) {
  const figure = h('figure', { class: `map-thumb${large ? ' is-large' : ''} is-loading` });
  const note = h('span', { class: 'map-thumb-note', text: 'loading image…' });
  figure.append(note);
  const safe = imageUrl(url, demo);
  const unavailable = (why) => {
    figure.classList.remove('is-loading');
    figure.classList.add('is-unavailable');
    note.textContent = why;
  };
  if (demo) {
    unavailable('demo row: no image');
    return figure;
  }
  if (!safe) {
    unavailable(safeUrl(url) ? 'no image (a made-up example address)' : 'image unavailable (no http(s) link)');
    return figure;
  }
  const img = new Image();
  img.alt = '';
  img.decoding = 'async';
  img.referrerPolicy = 'no-referrer';
  const timer = setTimeout(() => { if (!img.complete || !img.naturalWidth) { img.src = ''; unavailable('image unavailable'); } }, 8000);
  img.addEventListener('load', () => {
    clearTimeout(timer);
    if (!img.naturalWidth) return unavailable('image unavailable');
    figure.classList.remove('is-loading');
    note.remove();
  });
  img.addEventListener('error', () => { clearTimeout(timer); unavailable('image unavailable'); });
  img.src = safe;
  figure.prepend(img);
  return figure;
}

function scoreList(info, meta) {
  const list = h('dl', { class: 'map-scores' });
  for (const score of meta.scores.filter((s) => s.present > 0)) {
    list.append(h('div', {}, h('dt', { text: score.label }), h('dd', { text: formatScore(info[score.name], score.name) })));
  }
  return list;
}

export function pointInfo(info, meta, { large = false } = {}) {
  const parts = [thumbnail(info.url, large, Boolean(meta.demo || info.demo))];
  const caption = h('p', { class: 'map-caption' });
  caption.textContent = info.caption || '(no caption)';
  parts.push(caption);
  const domain = info.domain || info.host;
  if (domain) parts.push(h('p', { class: 'map-domain', text: domain }));
  parts.push(scoreList(info, meta));
  return parts;
}

export class Tooltip {
  constructor(el, stage) {
    this.el = el;
    this.stage = stage;
    this.index = -1;
  }

  show(index, px, py, info, meta) {
    this.index = index;
    this.el.replaceChildren(...(info ? pointInfo(info, meta) : [h('p', { class: 'map-caption is-loading', text: 'Loading caption…' })]));
    this.el.hidden = false;
    this.place(px, py);
  }

  place(px, py) {
    const w = this.el.offsetWidth, hgt = this.el.offsetHeight;
    const W = this.stage.clientWidth, H = this.stage.clientHeight;
    let x = px + 16, y = py + 16;
    if (x + w > W - 8) x = px - w - 16;
    if (y + hgt > H - 8) y = Math.max(8, H - hgt - 8);
    this.el.style.transform = `translate(${Math.max(8, x)}px, ${y}px)`;
  }

  hide() {
    this.index = -1;
    this.el.hidden = true;
  }
}

export class Card {
  constructor(el, onClose) {
    this.el = el;
    this.onClose = onClose;
  }

  show(index, info, meta) {
    const close = h('button', { type: 'button', class: 'map-card-close', 'aria-label': 'Close details', text: '×' });
    close.addEventListener('click', () => this.onClose());
    const body = info ? pointInfo(info, meta, { large: true }) : [h('p', { class: 'map-caption', text: 'Loading…' })];
    const extra = [];
    if (info) {
      const url = meta.demo ? '' : safeUrl(info.url);
      if (meta.demo) {
        extra.push(h('p', { class: 'map-nolink', text: 'A generated demo row: it has no image to open.' }));
      } else if (url) {
        const link = h('a', { class: 'map-link', href: url, target: '_blank', rel: 'noopener noreferrer nofollow' });
        link.textContent = `Open image on ${info.host || 'its site'}`;
        extra.push(link);
      } else {
        extra.push(h('p', { class: 'map-nolink', text: 'No http(s) link for this row.' }));
      }
      if (info.row_id !== null && info.row_id !== undefined) extra.push(h('p', { class: 'map-rowid', text: `Sample row ${formatNumber(info.row_id)}` }));
    }
    this.el.replaceChildren(h('div', { class: 'map-card-head' }, h('h2', { text: 'Pinned point' }), close), ...body, ...extra);
    this.el.hidden = false;
    this.index = index;
  }

  /**
   * List the pinned point's nearest neighbours as buttons (Enter or a click walks to one);
   * `load(id)` resolves to a point's info, `onChoose(id)`.
   */
  neighbours(index, ids, load, onChoose) {
    if (this.index !== index) return;
    this.el.querySelector('.map-neighbours')?.remove();
    const section = h('section', { class: 'map-neighbours', 'aria-label': 'Nearest neighbours' },
      h('h3', { text: ids.length ? `Nearest in embedding space (${ids.length})` : 'No neighbours for this point' }));
    const list = h('ol', { class: 'map-neighbour-list' });
    for (const id of ids) {
      const button = h('button', { type: 'button', class: 'map-neighbour', 'data-id': id, text: '…' });
      button.addEventListener('click', () => onChoose(id));
      list.append(h('li', {}, button));
      load(id).then((info) => { button.textContent = info.caption || '(no caption)'; button.title = info.host || ''; })
        .catch(() => { button.textContent = '(caption unavailable)'; });
    }
    section.append(list);
    this.el.append(section);
  }

  hide() {
    this.el.hidden = true;
    this.index = -1;
  }
}
