// Colour per point (RGBA bytes, alpha 0 = filtered out) from the colour-by choice and filters.

// 20 categories readable on a dark background (Tableau 20, reordered: strong hues first).
export const CATEGORICAL = [
  '#4e9cf5', '#f28e2b', '#e15759', '#59c9a5', '#edc948', '#b07aa1', '#ff9da7', '#9c755f',
  '#76b7b2', '#a0cbe8', '#ffbe7d', '#8cd17d', '#f1ce63', '#d4a6c8', '#86bcb6', '#fabfd2',
  '#d7b5a6', '#b6992d', '#499894', '#e49444',
];
export const OTHER = '#6b7280';
export const MISSING = '#3a4150';
export const HIGHLIGHT = '#ffe14d';
// A perceptual ramp (viridis, from its 12% point so the low end stays visible on a dark map).
const RAMP_STOPS = ['#3b4f8a', '#2f6c8e', '#25858e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];

export function hexToRgb(hex) {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/**
 * The ramp as a lookup table of RGB bytes indexed by a quantised score: 0..scoreMax along the
 * ramp, `missing` (a byte outside that range) in the "no value" colour.
 */
export function rampLut({ score_max: scoreMax, score_missing: missing }) {
  const stops = RAMP_STOPS.map(hexToRgb);
  const lut = new Uint8Array((Math.max(scoreMax, missing) + 1) * 3);
  for (let i = 0; i <= scoreMax; i++) {
    const t = (i / scoreMax) * (stops.length - 1);
    const a = Math.floor(t), b = Math.min(stops.length - 1, a + 1), f = t - a;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(stops[a][c] * (1 - f) + stops[b][c] * f);
  }
  lut.set(hexToRgb(MISSING), missing * 3);
  return lut;
}
export const RAMP_CSS = `linear-gradient(to right, ${RAMP_STOPS.join(', ')})`;

function categoricalLut(n, otherIndex) {
  const lut = new Uint8Array(Math.max(n, 1) * 3 + 3);
  for (let i = 0; i < n; i++) lut.set(hexToRgb(i === otherIndex ? OTHER : CATEGORICAL[i % CATEGORICAL.length]), i * 3);
  return lut;
}

/**
 * Quantised [lo, hi] byte range of a score filter, or null when it keeps everything.
 * `scoreMax` is meta.encoding.score_max (scores are stored as 0..scoreMax over [min, max]).
 */
export function filterBytes(score, range, scoreMax) {
  if (!range) return null;
  const span = score.max - score.min || 1;
  const [lo, hi] = range;
  if (lo <= score.min && hi >= score.max) return null;
  // 0.01 of a step of slack: a range read back from the address (4 decimals) keeps its bytes.
  const qlo = Math.max(0, Math.ceil(((lo - score.min) / span) * scoreMax - 0.01));
  const qhi = Math.min(scoreMax, Math.floor(((hi - score.min) / span) * scoreMax + 0.01));
  return [qlo, qhi];
}

/** The cluster level coloured by "cluster": the one whose labels are shown (the coarsest by default). */
export function colourLevel(meta, levelName) {
  return meta.clusters.find((level) => level.name === levelName) || meta.clusters[0];
}

export function rgbToHex([r, g, b]) {
  return `#${[r, g, b].map((v) => Math.round(Math.min(255, Math.max(0, v))).toString(16).padStart(2, '0')).join('')}`;
}

/** [h (degrees), s, l] (s, l in [0, 1]) of a hex colour. */
export function hexToHsl(hex) {
  const [r, g, b] = hexToRgb(hex).map((v) => v / 255);
  const max = Math.max(r, g, b), min = Math.min(r, g, b), l = (max + min) / 2, d = max - min;
  if (!d) return [0, 0, l];
  const s = d / (1 - Math.abs(2 * l - 1));
  const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return [(h * 60 + 360) % 360, s, l];
}

export function hslToHex([h, s, l]) {
  const c = (1 - Math.abs(2 * l - 1)) * s, x = c * (1 - Math.abs(((h / 60) % 2) - 1)), m = l - c / 2;
  const [r, g, b] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] : h < 300 ? [x, 0, c] : [c, 0, x];
  return rgbToHex([(r + m) * 255, (g + m) * 255, (b + m) * 255]);
}

/**
 * For each cluster of a finer level, the cluster of the coarser level most of its points are in
 * (-1 when it has none). `fine`/`coarse` are the points' cluster numbers (`none` = unclustered).
 */
export function parentsOf(fine, coarse, nFine, nCoarse, none) {
  const counts = new Uint32Array(nFine * nCoarse);
  for (let i = 0; i < fine.length; i++) {
    const f = fine[i], c = coarse[i];
    if (f < nFine && c < nCoarse && f !== none && c !== none) counts[f * nCoarse + c]++;
  }
  return Array.from({ length: nFine }, (_, f) => {
    let best = -1, most = 0;
    for (let c = 0; c < nCoarse; c++) if (counts[f * nCoarse + c] > most) { most = counts[f * nCoarse + c]; best = c; }
    return best;
  });
}

/**
 * Colours of child clusters from their parents' colours: siblings keep the parent's hue family,
 * spread a little in hue and in lightness (biggest sibling nearest the parent's own colour), so
 * a fine cluster reads as part of its coarse one. `parents[i]` indexes `parentColours` (-1: grey).
 */
export function childColours(parentColours, parents, sizes = []) {
  const siblings = new Map();
  parents.forEach((p, i) => { if (!siblings.has(p)) siblings.set(p, []); siblings.get(p).push(i); });
  const out = new Array(parents.length);
  for (const [p, members] of siblings) {
    members.sort((a, b) => (sizes[b] || 0) - (sizes[a] || 0) || a - b);
    const [h, s, l] = p >= 0 && p < parentColours.length ? hexToHsl(parentColours[p]) : hexToHsl(OTHER);
    const m = members.length, spread = Math.min(36, 8 * (m - 1));
    members.forEach((i, k) => {
      // 0, +1, -1, +2, -2 ... steps away from the parent's colour
      const step = k === 0 ? 0 : (k % 2 ? 1 : -1) * Math.ceil(k / 2);
      const hue = (h + (m > 1 ? (step / Math.max(1, Math.ceil((m - 1) / 2))) * (spread / 2) : 0) + 360) % 360;
      const light = Math.min(0.82, Math.max(0.38, l + step * 0.06));
      out[i] = hslToHex([hue, Math.min(1, s * (1 - Math.abs(step) * 0.04)), light]);
    });
  }
  return out;
}

/**
 * The cluster hierarchy's colours: the coarsest level from the categorical palette, each finer
 * level's derived from its parent in the level above. Returns {colours: {level: [hex]},
 * parents: {level: [index in the level above, or -1]}} (the coarsest level has no parents).
 */
export function clusterPalette(meta, points) {
  const colours = {}, parents = {};
  const none = meta.encoding.no_cluster;
  meta.clusters.forEach((level, k) => {
    if (k === 0) { colours[level.name] = level.labels.map((_, i) => CATEGORICAL[i % CATEGORICAL.length]); return; }
    const up = meta.clusters[k - 1];
    parents[level.name] = parentsOf(points.clusters[level.name], points.clusters[up.name], level.labels.length, up.labels.length, none);
    colours[level.name] = childColours(colours[up.name], parents[level.name], level.size);
  });
  return { colours, parents };
}

/**
 * A colour ramp fitted to the data: each score byte is placed on the ramp by the share of the
 * points at or below it (its rank), so a score crowded near one end still uses every colour.
 * `counts` is the count of points per byte 0..top. Returns the LUT (as rampLut) and the
 * byte values at the ramp's quartiles (0, 25, 50, 75, 100%) for the legend.
 */
export function quantileLut(counts, encoding) {
  const { score_max: top, score_missing: missing } = encoding;
  const stops = RAMP_STOPS.map(hexToRgb);
  const lut = new Uint8Array((Math.max(top, missing) + 1) * 3);
  const total = counts.reduce((a, b) => a + b, 0) || 1;
  let below = 0;
  const ticks = [];
  const marks = [0, 0.25, 0.5, 0.75, 1];
  for (let v = 0; v <= top; v++) {
    const t = ((below + counts[v] / 2) / total) * (stops.length - 1);  // mid-rank of this byte
    while (ticks.length < marks.length && (below + counts[v]) / total >= marks[ticks.length] && (counts[v] || marks[ticks.length] === 0)) ticks.push(v);
    below += counts[v];
    const a = Math.min(stops.length - 1, Math.floor(t)), b = Math.min(stops.length - 1, a + 1), f = t - a;
    for (let c = 0; c < 3; c++) lut[v * 3 + c] = Math.round(stops[a][c] * (1 - f) + stops[b][c] * f);
  }
  while (ticks.length < marks.length) ticks.push(top);
  lut.set(hexToRgb(MISSING), missing * 3);
  return { lut, ticks };
}

/**
 * The filterable channels: each score (bytes in points.scores, 4 a point) and, once its file has
 * arrived, caption length (points.lengths, 1 a point). `bit` is the channel's bit in a fail mask.
 */
export function channels(meta, points) {
  const out = meta.scores.map((score) => ({ score, values: points.scores, stride: 4, offset: score.index, bit: score.index }));
  if (meta.lengths && points.lengths) out.push({ score: meta.lengths, values: points.lengths, stride: 1, offset: 0, bit: 4 });
  return out;
}

/** Active filters as [values, stride, offset, lo, hi, bit] byte checks over the channels. */
export function filterChecks(meta, points, filters) {
  const checks = [];
  for (const ch of channels(meta, points)) {
    const range = filterBytes(ch.score, filters?.[ch.score.name], meta.encoding.score_max);
    if (range) checks.push([ch.values, ch.stride, ch.offset, range[0], range[1], ch.bit]);
  }
  return checks;
}

/**
 * Fill rgba (Uint8Array 4n) and visible (Uint8Array n); returns the number of visible points.
 */
export function computeColours(points, meta, state, rgba, visible, { level = null, palette = null, fitted = null } = {}) {
  const n = points.count;
  const colour = state.colour;
  const { score_max: scoreMax, score_missing: missing } = meta.encoding;
  const checks = filterChecks(meta, points, state.filters);
  let lut, values, stride = 1, offset = 0;
  if (colour === 'domain') {
    lut = categoricalLut(meta.domains.length, meta.domains.length - 1);
    values = points.domain;
  } else if (colour === 'cluster' && meta.clusters.length) {
    const shown = colourLevel(meta, level);
    const colours = palette?.colours[shown.name];
    lut = colours ? Uint8Array.from(colours.flatMap(hexToRgb)) : categoricalLut(shown.labels.length, -1);
    values = points.clusters[shown.name];
  } else {
    const score = meta.scores.find((s) => s.name === colour);
    if (score) {
      lut = fitted?.[score.name]?.lut || rampLut(meta.encoding);
      values = points.scores;
      stride = 4;
      offset = score.index;
    }
  }
  const other = hexToRgb(OTHER);
  const limit = lut ? lut.length / 3 : 0;
  let shown = 0;
  for (let i = 0; i < n; i++) {
    let ok = 1;
    for (let c = 0; c < checks.length; c++) {
      const [vals, st, off, lo, hi] = checks[c];
      const v = vals[i * st + off];
      if (v === missing || v < lo || v > hi) { ok = 0; break; }
    }
    visible[i] = ok;
    shown += ok;
    const o = i * 4;
    if (values) {
      const v = values[i * stride + offset];
      if (v < limit) {
        rgba[o] = lut[v * 3]; rgba[o + 1] = lut[v * 3 + 1]; rgba[o + 2] = lut[v * 3 + 2];
      } else {
        rgba[o] = other[0]; rgba[o + 1] = other[1]; rgba[o + 2] = other[2];
      }
    } else {
      rgba[o] = 120; rgba[o + 1] = 160; rgba[o + 2] = 230;
    }
    rgba[o + 3] = ok ? 255 : 0;
  }
  return shown;
}

/** What the legend shows for the current colour-by choice (the same level and scale the points use). */
export function legendFor(meta, colour, { level = null, palette = null, fitted = null } = {}) {
  if (colour === 'domain') {
    const items = meta.domains.map((name, i) => ({
      label: name,
      colour: i === meta.domains.length - 1 ? OTHER : CATEGORICAL[i % CATEGORICAL.length],
      count: meta.domain_counts[i],
    }));
    return { kind: 'categorical', title: 'Domain', items };
  }
  if (colour === 'cluster' && meta.clusters.length) {
    const shown = colourLevel(meta, level);
    const colours = palette?.colours[shown.name] || shown.labels.map((_, i) => CATEGORICAL[i % CATEGORICAL.length]);
    const items = shown.labels.map((label, i) => ({ label, colour: colours[i], count: shown.size[i] }));
    items.sort((a, b) => b.count - a.count);
    return { kind: 'categorical', title: `Cluster (${shown.name})`, level: shown.name, items };
  }
  const score = meta.scores.find((s) => s.name === colour);
  if (score) {
    const raw = (q) => score.min + (q / meta.encoding.score_max) * (score.max - score.min);
    const ticks = fitted?.[score.name]?.ticks.map(raw) || [score.min, score.max];
    return { kind: 'continuous', name: score.name, title: score.label, min: score.min, max: score.max, ticks, gradient: RAMP_CSS, missing: MISSING,
      fitted: Boolean(fitted?.[score.name]) };
  }
  return { kind: 'none', title: '', items: [] };
}
