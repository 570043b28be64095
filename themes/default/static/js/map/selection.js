// Selections as pure functions: which points a lasso or box holds, histograms of score bytes,
// sorting and paging the selected rows, the CSV of a selection and a region in the address.

/** Is world point (x, y) inside the polygon [[x, y], ...] (even-odd rule)? */
export function pointInPolygon(x, y, polygon) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i], [xj, yj] = polygon[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** The polygon of a box given by two opposite corners. */
export function boxPolygon([x0, y0], [x1, y1]) {
  return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
}

/** [minX, minY, maxX, maxY] of a polygon. */
export function polygonBounds(polygon) {
  let a = Infinity, b = Infinity, c = -Infinity, d = -Infinity;
  for (const [x, y] of polygon) {
    if (x < a) a = x;
    if (y < b) b = y;
    if (x > c) c = x;
    if (y > d) d = y;
  }
  return [a, b, c, d];
}

/**
 * Ids of the points inside `polygon` (world coordinates, [0, 1]²) that `keep(i)` accepts, in
 * map order. `xy` is the quantised positions (Uint16Array 2n) over `xyMax`. Fewer than three
 * finite vertices select nothing.
 */
export function pointsInPolygon(xy, n, xyMax, polygon, keep = () => true) {
  const poly = (polygon || []).filter((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (poly.length < 3) return new Uint32Array(0);
  const [a, b, c, d] = polygonBounds(poly);
  // Work in quantised units: one multiplication per vertex instead of one division per point.
  const q = poly.map(([x, y]) => [x * xyMax, y * xyMax]);
  const qa = a * xyMax, qb = b * xyMax, qc = c * xyMax, qd = d * xyMax;
  const out = [];
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < qa || x > qc || y < qb || y > qd) continue;
    if (pointInPolygon(x, y, q) && keep(i)) out.push(i);
  }
  return Uint32Array.from(out);
}

/**
 * Counts of byte values in `bins` equal bins over 0..top (values above `top`, the "missing"
 * byte, are left out), for the points `ids` (all n points when ids is null). `bytes[i * stride
 * + offset]` is point i's value.
 */
export function histogram(bytes, stride, offset, top, bins, ids = null, n = bytes.length / stride) {
  const counts = new Uint32Array(bins);
  const width = (top + 1) / bins;
  const add = (i) => {
    const v = bytes[i * stride + offset];
    if (v <= top) counts[Math.min(bins - 1, Math.floor(v / width))]++;
  };
  if (ids) for (const i of ids) add(i);
  else for (let i = 0; i < n; i++) add(i);
  return counts;
}

/** The byte range [lo, hi] that bins [b0, b1] (inclusive, any order) of `bins` over 0..top cover. */
export function binRange(b0, b1, top, bins) {
  const lo = Math.max(0, Math.min(b0, b1)), hi = Math.min(bins - 1, Math.max(b0, b1));
  const width = (top + 1) / bins;
  return [Math.ceil(lo * width), Math.min(top, Math.ceil((hi + 1) * width) - 1)];
}

/**
 * The ids sorted by a score byte (`bytes[i * stride + offset]`), highest first when `descending`;
 * missing values (above `top`) always last; ties keep their order. A counting sort: linear time.
 */
export function sortByScore(ids, bytes, stride, offset, top, descending = true) {
  const slots = top + 2;  // one per byte value, then "missing"
  const key = (i) => { const v = bytes[i * stride + offset]; return v > top ? top + 1 : descending ? top - v : v; };
  const starts = new Uint32Array(slots + 1);
  for (const id of ids) starts[key(id) + 1]++;
  for (let k = 0; k < slots; k++) starts[k + 1] += starts[k];
  const out = new Array(ids.length);
  for (const id of ids) out[starts[key(id)]++] = id;
  return out;
}

/** Page `page` (0-based, clamped) of `size` rows: { rows, page, pages }. */
export function pageOf(ids, page, size) {
  const pages = Math.max(1, Math.ceil(ids.length / size));
  const p = Math.min(pages - 1, Math.max(0, Math.floor(page) || 0));
  return { rows: ids.slice(p * size, (p + 1) * size), page: p, pages };
}

// What a reader cannot see in front of a formula sign: whitespace, controls, format characters
// (zero-width, bidi), marks and the other default-ignorable code points.
const INVISIBLE = /^[\p{White_Space}\p{Cc}\p{Cf}\p{Z}\p{Mn}\p{Me}\p{Default_Ignorable_Code_Point}]*/u;
// First visible characters that start a formula, after NFKC (which folds ＝＋－＠ and ﹢﹣﹦﹫);
// U+2212 MINUS SIGN has no compatibility form.
const FORMULA_STARTS = new Set(['=', '+', '-', '@', '\u2212']);

/**
 * Whether a spreadsheet may run `text`: it starts with tab or CR, or its first visible character
 * (NFKC-folded) is = + - @ or −. The same rule as atlas/published.py (looks_like_formula), which
 * guards the CSV files the build publishes; change both together.
 */
export function looksLikeFormula(text) {
  if (text[0] === '\t' || text[0] === '\r') return true;
  const rest = text.slice(INVISIBLE.exec(text)[0].length);
  if (!rest) return false;
  const first = String.fromCodePoint(rest.codePointAt(0)).normalize('NFKC');
  return FORMULA_STARTS.has(first[0]);
}

/** A CSV cell: formula-looking text (looksLikeFormula) gets a leading apostrophe, then RFC 4180 quoting. */
export function csvCell(value) {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : String(value);
  if (typeof value === 'string' && looksLikeFormula(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV text (CRLF lines) of a header and rows. */
export function toCsv(header, rows) {
  return [header, ...rows].map((row) => row.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

/** A polygon in the address: "x,y;x,y;..." with 4 decimals (world coordinates). */
export function formatRegion(polygon) {
  return polygon.map(([x, y]) => `${Number(x.toFixed(4))},${Number(y.toFixed(4))}`).join(';');
}

/** Parse `formatRegion`'s text; null unless it holds 3 to 200 finite vertices. */
export function parseRegion(text) {
  if (typeof text !== 'string' || text.length > 6000) return null;
  const poly = [];
  for (const part of text.split(';')) {
    const [x, y] = part.split(',').map(Number);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return null;
    poly.push([Math.min(2, Math.max(-1, x)), Math.min(2, Math.max(-1, y))]);
  }
  return poly.length >= 3 && poly.length <= 200 ? poly : null;
}

/** Drop vertices closer than `minDist` to the previous kept one (a lasso's pointer trail), at most `max`. */
export function simplify(polygon, minDist, max = 200) {
  const out = [];
  for (const p of polygon) {
    const last = out[out.length - 1];
    if (!last || Math.hypot(p[0] - last[0], p[1] - last[1]) >= minDist) out.push(p);
  }
  if (out.length <= max) return out;
  const step = out.length / max;
  return Array.from({ length: max }, (_, k) => out[Math.floor(k * step)]);
}
