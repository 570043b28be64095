// Cluster labels over the map: the coarse level when zoomed out, the fine level when zoomed in,
// placed biggest cluster first and skipped where they would overlap. Text goes in via textContent.

const MAX_LABELS = 60;

export class Labels {
  constructor(layer, meta) {
    this.layer = layer;
    this.meta = meta;
    this.pool = [];
    /** clusterPalette()'s result when the points are coloured by cluster: each label wears its cluster's colour. */
    this.palette = null;
    this.levels = meta.clusters.map((level) => {
      const order = level.labels.map((_, i) => i).sort((a, b) => level.size[b] - level.size[a]);
      return { ...level, order };
    });
  }

  /** The level shown at zoom z: coarse below 1.5, then finer levels. */
  levelAt(z) {
    if (!this.levels.length) return null;
    const i = Math.min(this.levels.length - 1, Math.max(0, Math.floor((z + 0.5) / 2)));
    return this.levels[i];
  }

  update(camera, z, hidden) {
    const level = hidden ? null : this.levelAt(z);
    const placed = [];
    let used = 0;
    if (level) {
      const { width, height } = camera;
      for (const i of level.order) {
        if (used >= MAX_LABELS) break;
        if (!level.size[i]) continue;
        const [x, y] = camera.toScreen(level.x[i], level.y[i]);
        if (x < 0 || y < 0 || x > width || y > height) continue;
        const text = level.labels[i];
        const w = Math.min(220, text.length * 7 + 16), h = 22;
        const box = [x - w / 2, y - h / 2, x + w / 2, y + h / 2];
        if (box[0] < 4 || box[2] > width - 4 || box[1] < 4 || box[3] > height - 4) continue;
        if (placed.some((b) => b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3])) continue;
        placed.push(box);
        const el = this._label(used++);
        if (el.textContent !== text) el.textContent = text;
        el.dataset.level = level.name;
        el.style.setProperty('--swatch', this.palette?.colours[level.name]?.[i] || 'transparent');
        el.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px) translate(-50%, -50%)`;
        el.hidden = false;
      }
    }
    for (let j = used; j < this.pool.length; j++) this.pool[j].hidden = true;
    return used;
  }

  _label(i) {
    while (this.pool.length <= i) {
      const el = document.createElement('span');
      el.className = 'map-label';
      this.layer.appendChild(el);
      this.pool.push(el);
    }
    return this.pool[i];
  }
}
