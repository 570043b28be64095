// Density: at low zoom a shaded field of where the points are, so a big map reads as islands at
// the first view. A grid of counts over the world, blurred, drawn as a soft glow on its own canvas
// layer over the points' canvas (screen-blended, so it lights the background and leaves the
// points' colours), fading out as one zooms in, and off while a search or selection greys the map.
// The same for the WebGL2 and Canvas2D renderers.

/** Counts of points per cell of a size×size grid over the world [0, 1]², blurred (two box passes). */
export function densityGrid(xy, n, xyMax, size = 256, radius = 2) {
  let grid = new Float32Array(size * size);
  const scale = size / (xyMax + 1);
  for (let i = 0; i < n; i++) {
    const gx = Math.floor(xy[2 * i] * scale), gy = Math.floor(xy[2 * i + 1] * scale);
    grid[gy * size + gx] += 1;
  }
  for (let pass = 0; pass < 2; pass++) grid = boxBlur(grid, size, radius);
  return grid;
}

/** One horizontal and one vertical box blur of radius r (edges clamp to the grid). */
export function boxBlur(grid, size, r) {
  const tmp = new Float32Array(grid.length), out = new Float32Array(grid.length), w = 2 * r + 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let sum = 0;
      for (let k = -r; k <= r; k++) sum += grid[y * size + Math.min(size - 1, Math.max(0, x + k))];
      tmp[y * size + x] = sum / w;
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let sum = 0;
      for (let k = -r; k <= r; k++) sum += tmp[Math.min(size - 1, Math.max(0, y + k)) * size + x];
      out[y * size + x] = sum / w;
    }
  }
  return out;
}

/**
 * RGBA bytes (rows top to bottom, world y up) of the field: a blue-white glow whose opacity grows
 * with the log of the density, so sparse regions stay faint and islands stand out.
 */
export function densityPixels(grid, size, [r, g, b] = [120, 170, 255]) {
  let max = 0;
  for (const v of grid) if (v > max) max = v;
  const out = new Uint8ClampedArray(size * size * 4), norm = Math.log1p(max) || 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = grid[(size - 1 - y) * size + x];
      const t = Math.log1p(v) / norm, o = (y * size + x) * 4;
      out[o] = r; out[o + 1] = g; out[o + 2] = b;
      out[o + 3] = Math.round(255 * 0.5 * t ** 1.4);
    }
  }
  return out;
}

/** How strongly the field shows at zoom z: fully when zoomed out, gone from z = 2.5. */
export function densityOpacity(z) {
  return Math.max(0, Math.min(1, (2.5 - z) / 2));
}

export class DensityLayer {
  constructor(canvas, points, size = 256) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    const field = document.createElement('canvas');
    field.width = field.height = size;
    field.getContext('2d').putImageData(new ImageData(densityPixels(densityGrid(points.xy, points.count, points.xyMax, size), size), size, size), 0, 0);
    this.field = field;
  }

  /** Draw the field for this view (`camera` maps world to screen); clear it when zoomed in or `off`. */
  draw(camera, view, dpr, off = false) {
    const { canvas, ctx } = this;
    const w = Math.round(camera.width * dpr), h = Math.round(camera.height * dpr);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    ctx.clearRect(0, 0, w, h);
    const alpha = off ? 0 : densityOpacity(view.z);
    if (!alpha) return;
    const [x0, y0] = camera.toScreen(0, 1, view), [x1, y1] = camera.toScreen(1, 0, view);
    ctx.globalAlpha = alpha;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.field, x0 * dpr, y0 * dpr, (x1 - x0) * dpr, (y1 - y0) * dpr);
  }
}
