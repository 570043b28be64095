// CPU picking: a uniform grid over the [0, 1]² world built with a counting sort (two passes over
// the typed arrays, no per-point objects). Queries scan the cells a pick radius touches.

export class GridIndex {
  /** `xy`: interleaved quantised coordinates, world = q / xyMax (meta.encoding.xy_max). */
  constructor(xy, count, xyMax) {
    this.xy = xy;
    this.count = count;
    this.scale = 1 / xyMax;
    const side = Math.max(1, Math.min(1024, Math.round(Math.sqrt(count / 4))));
    this.side = side;
    const cellOf = new Uint32Array(count);
    const starts = new Uint32Array(side * side + 1);
    const k = side / (xyMax + 1);  // q = xyMax still lands in the last cell
    for (let i = 0; i < count; i++) {
      const cx = (xy[2 * i] * k) | 0;
      const cy = (xy[2 * i + 1] * k) | 0;
      const cell = cy * side + cx;
      cellOf[i] = cell;
      starts[cell + 1]++;
    }
    let occupied = 0;
    for (let c = 0; c < side * side; c++) {
      if (starts[c + 1] > 0) occupied++;
      starts[c + 1] += starts[c];
    }
    const fill = starts.slice(0, side * side);
    const items = new Uint32Array(count);
    for (let i = 0; i < count; i++) items[fill[cellOf[i]]++] = i;
    this.starts = starts;
    this.items = items;
    /** Fraction of the world the data covers (for density-aware point sizes). */
    this.coverage = occupied / (side * side);
  }

  /**
   * The visible point nearest to world (wx, wy) within `radius` world units, or -1.
   * `visible(i)` says whether point i is shown (filters); later points win ties (drawn on top).
   */
  nearest(wx, wy, radius, visible) {
    const { side, starts, items, xy } = this;
    const lo = (v) => Math.max(0, Math.min(side - 1, Math.floor(v * side)));
    const x0 = lo(wx - radius), x1 = lo(wx + radius);
    const y0 = lo(wy - radius), y1 = lo(wy + radius);
    if ((x1 - x0 + 1) * (y1 - y0 + 1) > 250000) return -1;
    const r2 = radius * radius;
    const s = this.scale;
    let best = -1, bestD = r2;
    for (let cy = y0; cy <= y1; cy++) {
      for (let cx = x0; cx <= x1; cx++) {
        const cell = cy * side + cx;
        for (let j = starts[cell]; j < starts[cell + 1]; j++) {
          const i = items[j];
          const dx = xy[2 * i] * s - wx, dy = xy[2 * i + 1] * s - wy;
          const d = dx * dx + dy * dy;
          if (d <= bestD && (!visible || visible(i))) {
            if (d < bestD || i > best) { best = i; bestD = d; }
          }
        }
      }
    }
    return best;
  }
}
