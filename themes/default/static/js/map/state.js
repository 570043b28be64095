// The map's state (view, colour, search, filters, pinned point, selection) behind get/set with change
// events, mirrored in the URL hash so a view can be shared: #x=0.5&y=0.5&z=1&c=domain&q=cat&f=aesthetic:5:8
// (a drawn selection as r=x,y;x,y;... in world coordinates, the search as a selection as s=q, a
// search by meaning as m=meaning).
import { formatRegion, parseRegion } from './selection.js';

export const DEFAULT_VIEW = { x: 0.5, y: 0.5, z: 0 };
export const MIN_ZOOM = -1;
export const MAX_ZOOM = 12;

export class Store {
  constructor(initial) {
    this.state = { ...initial };
    this.listeners = new Set();
  }

  get(key) {
    return key === undefined ? this.state : this.state[key];
  }

  /** Merge a patch; listeners get (state, changedKeys). */
  set(patch, source = 'app') {
    const changed = [];
    for (const [key, value] of Object.entries(patch)) {
      if (!sameValue(this.state[key], value)) {
        this.state[key] = value;
        changed.push(key);
      }
    }
    if (changed.length) for (const fn of this.listeners) fn(this.state, changed, source);
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

function sameValue(a, b) {
  if (a === b) return true;
  if (a && b && typeof a === 'object') return JSON.stringify(a) === JSON.stringify(b);
  return false;
}

export function clampZoom(z) {
  return Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, z));
}

function num(value, fallback, lo = -Infinity, hi = Infinity) {
  const n = Number.parseFloat(value);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
}

/** Parse a location hash into a state patch; unknown or malformed parts are ignored. */
export function parseHash(hash, meta) {
  const params = new URLSearchParams(String(hash || '').replace(/^#/, ''));
  const patch = {};
  const view = { ...DEFAULT_VIEW };
  let hasView = false;
  if (params.has('x')) { view.x = num(params.get('x'), view.x, -1, 2); hasView = true; }
  if (params.has('y')) { view.y = num(params.get('y'), view.y, -1, 2); hasView = true; }
  if (params.has('z')) { view.z = clampZoom(num(params.get('z'), view.z)); hasView = true; }
  if (hasView) patch.view = view;
  const colour = params.get('c');
  if (colour && meta.colour_by.includes(colour)) patch.colour = colour;
  if (params.has('q')) patch.query = params.get('q').slice(0, 200);
  if (params.get('m') === 'meaning') patch.mode = 'meaning';
  else if (params.has('q')) patch.mode = 'words';
  if (params.has('f')) {
    const filters = {};
    for (const part of params.get('f').split(',')) {
      const [name, lo, hi] = part.split(':');
      const score = [...meta.scores, ...(meta.lengths ? [meta.lengths] : [])].find((s) => s.name === name && s.present > 0);
      if (!score) continue;
      const a = num(lo, score.min, score.min, score.max);
      const b = num(hi, score.max, score.min, score.max);
      filters[name] = [Math.min(a, b), Math.max(a, b)];
    }
    patch.filters = filters;
  }
  if (params.has('p')) {
    const p = Number.parseInt(params.get('p'), 10);
    if (Number.isInteger(p) && p >= 0 && p < meta.count) patch.pinned = p;
  }
  if (params.has('r')) {
    const polygon = parseRegion(params.get('r'));
    if (polygon) patch.selection = { kind: 'region', polygon };
  } else if (params.get('s') === 'q' && patch.query) {
    patch.selection = { kind: 'search' };
  }
  return patch;
}

function round(value, digits) {
  return Number(value.toFixed(digits)).toString();
}

/** The hash for a state (only what differs from the defaults). */
export function formatHash(state, meta) {
  const params = new URLSearchParams();
  const { view } = state;
  params.set('x', round(view.x, 5));
  params.set('y', round(view.y, 5));
  params.set('z', round(view.z, 3));
  if (state.colour && state.colour !== meta.colour_by[0]) params.set('c', state.colour);
  if (state.query) params.set('q', state.query);
  if (state.mode === 'meaning') params.set('m', 'meaning');
  const filters = Object.entries(state.filters || {})
    .map(([name, [lo, hi]]) => `${name}:${round(lo, 4)}:${round(hi, 4)}`);
  if (filters.length) params.set('f', filters.join(','));
  if (state.pinned !== null && state.pinned !== undefined && state.pinned >= 0) params.set('p', String(state.pinned));
  if (state.selection?.kind === 'region') params.set('r', formatRegion(state.selection.polygon));
  else if (state.selection?.kind === 'search' && state.query) params.set('s', 'q');
  return '#' + params.toString();
}
