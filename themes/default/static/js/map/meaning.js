// Search by meaning: the reader's words are embedded in their browser by the caption model the map
// was made with (window.__atlasText, js/text/atlas-text.js) and the closest points are listed like
// a keyword search's matches; a ring marks where the words themselves land on the map.

/** How many points a search by meaning lists. */
export const MEANING_K = 50;
/** The ring is placed from this many nearest points, weighted by closeness. */
const PLACE_FROM = 10;
/** Softmax temperature over cosine scores: the best few points dominate the place. */
const TEMPERATURE = 0.02;

/**
 * Where a text lands: the closeness-weighted mean of its nearest points' world coordinates
 * (softmax over their cosines, so a runner-up in another cluster barely pulls it), or null.
 * `world(id)` gives a point's [x, y].
 */
export function placeText(ids, scores, world, from = PLACE_FROM) {
  const n = Math.min(from, ids.length);
  if (!n) return null;
  const best = scores[0];
  let sx = 0, sy = 0, total = 0;
  for (let i = 0; i < n; i++) {
    if (!(ids[i] >= 0) || !Number.isFinite(scores[i])) continue;
    const w = Math.exp((scores[i] - best) / TEMPERATURE);
    const [x, y] = world(ids[i]);
    sx += w * x; sy += w * y; total += w;
  }
  return total > 0 ? [sx / total, sy / total] : null;
}

/** "close", "related", … for a cosine between a reader's words and a caption (MiniLM's scale). */
export function closenessWords(score) {
  if (!Number.isFinite(score)) return '';
  if (score >= 0.7) return 'very close';
  if (score >= 0.5) return 'close';
  if (score >= 0.3) return 'related';
  return 'far';
}

/** The ring on the map where the reader's words land (a DOM element over the canvas). */
export class MeaningMarker {
  constructor(el) {
    this.el = el;
    this.world = null;
  }

  /** Show the ring at world [x, y], or hide it (null). */
  set(world) {
    this.world = world;
    if (this.el) this.el.hidden = !world;
  }

  /** Follow the view (called with every frame the draw loop paints). */
  update(camera) {
    if (!this.el || !this.world) return;
    const [x, y] = camera.toScreen(this.world[0], this.world[1]);
    const off = x < -40 || y < -40 || x > camera.width + 40 || y > camera.height + 40;
    this.el.hidden = off;
    if (!off) this.el.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
  }
}

/** The page's side of the caption model, from the tag atlas-text.js reads (or its reason it is missing). */
export class MeaningSearch {
  constructor(scope = globalThis) {
    this.scope = scope;
    const tag = scope.document?.getElementById('atlas-text');
    /** Why this atlas has no search by meaning (reader words), or '' when it has one. */
    this.reason = tag ? (tag.dataset.model ? '' : tag.dataset.unavailable || 'Search by meaning is not available for this atlas.')
      : 'Search by meaning is not available for this atlas.';
    this.loaded = false;
  }

  get available() {
    return !this.reason;
  }

  /** {ids, scores} of the k points nearest to the text, best first (rejects with a reader's message). */
  async nearest(text, k = MEANING_K) {
    const model = this.scope.__atlasText;
    if (!this.available || !model) throw Object.assign(new Error(this.reason || 'Search by meaning is not available for this atlas.'), { code: 'unavailable' });
    const result = await model.nearest(text, k);
    this.loaded = true;
    return result;
  }
}
