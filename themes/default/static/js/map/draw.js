// The draw loop: point size and opacity from the on-screen density, one frame per animation
// frame at most, a subsampled frame while a big Canvas2D map moves, and the canvas's size.

/** Point size (CSS px) and opacity for `visible` points covering `coverage` of the world at `scale` px/unit. */
export function pointStyle(visible, coverage, scale) {
  const area = Math.max(coverage, 0.02) * scale * scale;
  const density = Math.max(visible, 1) / area;
  const size = Math.min(12, Math.max(1.5, Math.sqrt(1.4 / density)));
  const opacity = Math.min(0.92, Math.max(0.1, 1.6 / (density * size * size)));
  return { size, opacity };
}

/** Points a software renderer draws per frame while the view moves. */
const MOVING_BUDGET = 300_000;

export class DrawLoop {
  /** `onFirstFrame()` runs once, after the first frame is on screen. */
  constructor({ renderer, camera, store, labels, coverage, count, stage, onFirstFrame }) {
    Object.assign(this, { renderer, camera, store, labels, coverage, count, stage, onFirstFrame });
    this.visible = count;
    /** Grey the points out (a search or selection is highlighted over them). */
    this.dim = false;
    this.queued = 0;
    this.dpr = 1;
    this.drawMs = 0;
    this.movingUntil = 0;
    this.settleTimer = 0;
    this.firstFrame = true;
    /** The density field under the points (a DensityLayer), once it is computed. */
    this.density = null;
    /** Things drawn over the map that follow the view: each has update(camera). */
    this.overlays = [];
  }

  /** Size and opacity of points at zoom z. */
  style(z) {
    return pointStyle(this.visible, this.coverage, this.camera.scale(z));
  }

  /** The view is moving: a big software-rendered map may subsample for a moment. */
  moving(ms = 180) {
    this.movingUntil = performance.now() + ms;
  }

  draw() {
    this.queued = 0;
    const t0 = performance.now();
    const state = this.store.get();
    const { size, opacity } = this.style(state.view.z);
    let stride = 1;
    if (this.renderer.kind === 'canvas2d' && t0 < this.movingUntil && this.count > MOVING_BUDGET) {
      stride = Math.ceil(this.count / MOVING_BUDGET);
      clearTimeout(this.settleTimer);
      this.settleTimer = setTimeout(() => this.redraw(), this.movingUntil - t0 + 20);
    }
    this.renderer.draw({
      stride, cx: state.view.x, cy: state.view.y, scale: this.camera.scale(), dpr: this.dpr, size,
      opacity: Math.min(0.95, opacity * Math.sqrt(stride)),
      dim: this.dim,
      hover: state.hover, pinned: state.pinned,
    });
    this.density?.draw(this.camera, state.view, this.dpr, this.dim);
    this.labels.update(this.camera, state.view.z, false);
    for (const overlay of this.overlays) overlay.update(this.camera);
    this.drawMs = this.drawMs * 0.7 + (performance.now() - t0) * 0.3;
    if (this.firstFrame) {
      this.firstFrame = false;
      this.onFirstFrame?.();
    }
  }

  redraw() {
    if (!this.queued) this.queued = requestAnimationFrame(() => this.draw());
  }

  resize() {
    this.dpr = Math.min(window.devicePixelRatio || 1, 3);
    const w = Math.max(1, this.stage.clientWidth), h = Math.max(1, this.stage.clientHeight);
    const canvas = this.renderer.canvas;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    this.renderer.resize(Math.round(w * this.dpr), Math.round(h * this.dpr));
    this.camera.resize(w, h);
    this.draw();
  }
}
