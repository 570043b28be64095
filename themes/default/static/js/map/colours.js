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
  const qlo = Math.max(0, Math.ceil(((lo - score.min) / span) * scoreMax - 1e-6));
  const qhi = Math.min(scoreMax, Math.floor(((hi - score.min) / span) * scoreMax + 1e-6));
  return [qlo, qhi];
}

/** The cluster level coloured by "cluster" (the coarsest). */
export function colourLevel(meta) {
  return meta.clusters[0];
}

/**
 * Fill rgba (Uint8Array 4n) and visible (Uint8Array n); returns the number of visible points.
 */
export function computeColours(points, meta, state, rgba, visible) {
  const n = points.count;
  const colour = state.colour;
  const { score_max: scoreMax, score_missing: missing } = meta.encoding;
  // Filters as byte ranges on the interleaved score bytes.
  const checks = [];
  for (const score of meta.scores) {
    const range = filterBytes(score, state.filters?.[score.name], scoreMax);
    if (range) checks.push([score.index, range[0], range[1]]);
  }
  let lut, values, stride = 1, offset = 0;
  if (colour === 'domain') {
    lut = categoricalLut(meta.domains.length, meta.domains.length - 1);
    values = points.domain;
  } else if (colour === 'cluster' && meta.clusters.length) {
    const level = colourLevel(meta);
    lut = categoricalLut(level.labels.length, -1);
    values = points.clusters[level.name];
  } else {
    const score = meta.scores.find((s) => s.name === colour);
    if (score) {
      lut = rampLut(meta.encoding);
      values = points.scores;
      stride = 4;
      offset = score.index;
    }
  }
  const other = hexToRgb(OTHER);
  const limit = lut ? lut.length / 3 : 0;
  const scores = points.scores;
  let shown = 0;
  for (let i = 0; i < n; i++) {
    let ok = 1;
    for (let c = 0; c < checks.length; c++) {
      const v = scores[i * 4 + checks[c][0]];
      if (v === missing || v < checks[c][1] || v > checks[c][2]) { ok = 0; break; }
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

/** What the legend shows for the current colour-by choice. */
export function legendFor(meta, colour) {
  if (colour === 'domain') {
    const items = meta.domains.map((name, i) => ({
      label: name,
      colour: i === meta.domains.length - 1 ? OTHER : CATEGORICAL[i % CATEGORICAL.length],
      count: meta.domain_counts[i],
    }));
    return { kind: 'categorical', title: 'Domain', items };
  }
  if (colour === 'cluster' && meta.clusters.length) {
    const level = colourLevel(meta);
    const items = level.labels.map((label, i) => ({ label, colour: CATEGORICAL[i % CATEGORICAL.length], count: level.size[i] }));
    items.sort((a, b) => b.count - a.count);
    return { kind: 'categorical', title: `Cluster (${level.name})`, items };
  }
  const score = meta.scores.find((s) => s.name === colour);
  if (score) return { kind: 'continuous', title: score.label, min: score.min, max: score.max, gradient: RAMP_CSS, missing: MISSING };
  return { kind: 'none', title: '', items: [] };
}
