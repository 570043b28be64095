// Crossfilter: a small histogram per score the data has (and of caption length), in the panel. Each shows the whole
// sample (grey), the points that pass the other scores' filters (blue) and the current selection
// (yellow, over them); dragging across one (a brush) filters the map by that score, and the
// others update. The brush is the same filter as the "Filter by score" sliders.
import { channels, filterBytes, filterChecks } from './colours.js';
import { binRange, histogram } from './selection.js';
import { h } from './ui.js';

export const BINS = 40;

/**
 * Per point, a bit per failed filter; `checks` is [[values, stride, offset, lo, hi, bit]] byte
 * ranges (see filterChecks). A point passes all filters but channel b's when (mask & ~(1 << b)) === 0.
 */
export function failMasks(n, checks, missing) {
  const mask = new Uint8Array(n);
  for (const [values, stride, offset, lo, hi, index] of checks) {
    const bit = 1 << index;
    for (let i = 0; i < n; i++) {
      const v = values[i * stride + offset];
      if (v === missing || v < lo || v > hi) mask[i] |= bit;
    }
  }
  return mask;
}

/** Ids whose mask allows score `index`'s histogram (all others' filters passed). */
export function passingOthers(mask, index) {
  const allow = ~(1 << index) & 0xff;
  const out = [];
  for (let i = 0; i < mask.length; i++) if ((mask[i] & allow) === 0) out.push(i);
  return out;
}

function fmt(value, name) {
  if (name === 'caption_length') return String(Math.round(value));
  return name === 'aesthetic' ? value.toFixed(1) : value.toFixed(2);
}

export class Crossfilter {
  constructor(container, { meta, points, onBrush }) {
    Object.assign(this, { container, meta, points, onBrush });
    this.top = meta.encoding.score_max;
    this.channels = channels(meta, points).filter((ch) => ch.score.present > 0);
    this.whole = new Map(this.channels.map((ch) => [ch.score.name, histogram(ch.values, ch.stride, ch.offset, this.top, BINS)]));
    this.charts = new Map();
    container.replaceChildren();
    for (const ch of this.channels) this.charts.set(ch.score.name, this._chart(ch));
    container.hidden = this.channels.length === 0;
    this.filters = {};
  }

  _chart(channel) {
    const { score } = channel;
    const canvas = h('canvas', { class: 'map-hist-canvas', width: 240, height: 44, role: 'img',
      'aria-label': `Distribution of ${score.label}; drag across it to filter the map` });
    const range = h('span', { class: 'map-hist-range' });
    const counts = h('span', { class: 'map-hist-count' });
    const clear = h('button', { type: 'button', class: 'map-hist-clear', 'aria-label': `Clear the ${score.label} filter`, text: '×', hidden: true });
    clear.addEventListener('click', () => this.onBrush(score.name, null));
    const box = h('figure', { class: 'map-hist', 'data-score': score.name },
      h('figcaption', {}, h('span', { class: 'map-hist-name', text: score.label }), range, clear),
      canvas, h('div', { class: 'map-hist-axis' }, h('span', { text: fmt(score.min, score.name) }), counts, h('span', { text: fmt(score.max, score.name) })));
    this.container.append(box);
    const binAt = (event) => {
      const rect = canvas.getBoundingClientRect();
      return Math.max(0, Math.min(BINS - 1, Math.floor(((event.clientX - rect.left) / rect.width) * BINS)));
    };
    let from = null;
    canvas.addEventListener('pointerdown', (event) => {
      event.preventDefault();
      canvas.setPointerCapture?.(event.pointerId);
      from = binAt(event);
      this._brush(score, from, from, false);
    });
    canvas.addEventListener('pointermove', (event) => { if (from !== null) this._brush(score, from, binAt(event), false); });
    const end = (event) => {
      if (from === null) return;
      canvas.releasePointerCapture?.(event.pointerId);
      this._brush(score, from, binAt(event), true);
      from = null;
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
    return { canvas, range, counts, clear, score, channel, passing: null, selected: null, brush: null };
  }

  _brush(score, b0, b1, commit) {
    const [lo, hi] = binRange(b0, b1, this.top, BINS);
    const raw = (q) => score.min + (q / this.top) * (score.max - score.min);
    const chart = this.charts.get(score.name);
    chart.brush = [Math.min(b0, b1), Math.max(b0, b1)];
    this._draw(chart);
    if (commit) this.onBrush(score.name, [raw(lo), raw(hi)]);
  }

  /** Recount for these filters ({name: [lo, hi]}) and selected ids (or null). */
  update(filters, selected) {
    this.filters = filters || {};
    const { score_max: top, score_missing: missing } = this.meta.encoding;
    const checks = filterChecks(this.meta, this.points, this.filters);
    const n = this.points.count;
    const mask = checks.length ? failMasks(n, checks, missing) : null;
    for (const chart of this.charts.values()) {
      const { score, channel: { values, stride, offset, bit } } = chart;
      chart.passing = mask ? histogram(values, stride, offset, top, BINS, passingOthers(mask, bit)) : this.whole.get(score.name);
      chart.selected = selected && selected.length ? histogram(values, stride, offset, top, BINS, selected) : null;
      const range = filterBytes(score, this.filters[score.name], top);
      chart.brush = range ? [Math.floor((range[0] / (top + 1)) * BINS), Math.floor((range[1] / (top + 1)) * BINS)] : null;
      const f = this.filters[score.name];
      chart.range.textContent = f ? `${fmt(f[0], score.name)} – ${fmt(f[1], score.name)}` : '';
      chart.clear.hidden = !f;
      const total = chart.passing.reduce((a, b) => a + b, 0);
      const sel = chart.selected ? chart.selected.reduce((a, b) => a + b, 0) : 0;
      chart.counts.textContent = chart.selected ? `${sel.toLocaleString('en')} selected` : `${total.toLocaleString('en')} with a value`;
      this._draw(chart);
    }
  }

  _draw(chart) {
    const { canvas } = chart;
    const ctx = canvas.getContext('2d');
    const W = canvas.width, H = canvas.height, w = W / BINS;
    const whole = this.whole.get(chart.score.name);
    const peak = Math.max(1, ...whole);
    const y = (c) => (c ? Math.max(1, Math.sqrt(c / peak) * (H - 2)) : 0);  // sqrt: thin tails stay visible
    ctx.clearRect(0, 0, W, H);
    if (chart.brush) {
      ctx.fillStyle = 'rgba(255, 225, 77, 0.14)';
      ctx.fillRect(chart.brush[0] * w, 0, (chart.brush[1] - chart.brush[0] + 1) * w, H);
    }
    const bars = (counts, colour, inset = 0.5) => {
      ctx.fillStyle = colour;
      for (let b = 0; b < BINS; b++) { const v = y(counts[b]); if (v) ctx.fillRect(b * w + inset, H - v, w - 2 * inset, v); }
    };
    bars(whole, '#3a4150');
    if (chart.passing) bars(chart.passing, '#4e9cf5');
    if (chart.selected) {
      const selPeak = Math.max(1, ...chart.selected);
      const scaled = Array.from(chart.selected, (c) => (c ? Math.max(1, Math.round((c / selPeak) * peak)) : 0));
      bars(scaled, 'rgba(255, 225, 77, 0.85)', w * 0.28);  // the selection's shape, scaled to the same height
    }
  }
}
