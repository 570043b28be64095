// Point renderers with one interface: WebGL2 (GPU buffers, one draw call per pass) and a Canvas2D
// fallback that rasterises into an ImageData with typed-array loops when WebGL2 is unavailable.
import { POINT_FRAGMENT, POINT_VERTEX } from './shaders.js';
import { HIGHLIGHT, hexToRgb } from './colours.js';

export const BACKGROUND = [11, 14, 20];

/**
 * The best renderer available; `prefer: "canvas"` forces the fallback, `"webgl"` accepts software GL
 * (so a test can draw with WebGL2 on SwiftShader). The page passes its `?renderer=` query parameter;
 * the renderers' own names (`canvas2d`, `webgl2`, what `window.__atlasMap.renderer` reports) work too.
 */
export function createRenderer(canvas, { prefer } = {}) {
  prefer = { canvas2d: 'canvas', webgl2: 'webgl' }[prefer] || prefer;
  if (prefer === 'canvas') return new CanvasRenderer(canvas);
  try {
    // Software WebGL (SwiftShader, llvmpipe: no GPU, or a blocklisted one) is several times
    // slower than the Canvas2D rasteriser below, so it is refused unless asked for.
    const gl = canvas.getContext('webgl2', {
      antialias: false, alpha: false, depth: false, stencil: false, preserveDrawingBuffer: true,
      powerPreference: 'high-performance', failIfMajorPerformanceCaveat: prefer !== 'webgl',
    });
    if (gl && (prefer === 'webgl' || !isSoftware(gl))) return new WebGLRenderer(canvas, gl);
    if (gl) {
      console.info('atlas map: software WebGL; drawing with Canvas2D instead (?renderer=webgl overrides)');
      gl.getExtension('WEBGL_lose_context')?.loseContext();
    }
  } catch (error) {
    console.warn('atlas map: WebGL2 failed, using Canvas2D:', String(error.message || error));
  }
  // A canvas that handed out (or tried to) a WebGL context cannot give a 2D one: use a fresh one.
  const fresh = canvas.cloneNode(false);
  canvas.replaceWith(fresh);
  return new CanvasRenderer(fresh);
}

/** SwiftShader, llvmpipe and friends: WebGL emulated on the CPU. */
function isSoftware(gl) {
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) || '');
  return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(name);
}

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

class WebGLRenderer {
  constructor(canvas, gl) {
    this.kind = 'webgl2';
    this.canvas = canvas;
    this.gl = gl;
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, POINT_VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, POINT_FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
    this.program = program;
    this.u = {};
    for (const name of ['u_xy_scale', 'u_centre', 'u_scale', 'u_size', 'u_opacity', 'u_mode', 'u_dim', 'u_highlight']) {
      this.u[name] = gl.getUniformLocation(program, name);
    }
    this.vao = gl.createVertexArray();
    this.posBuffer = gl.createBuffer();
    this.colourBuffer = gl.createBuffer();
    this.indexBuffer = gl.createBuffer();
    this.count = 0;
    this.highlights = 0;
    this.maxPointSize = gl.getParameter(gl.ALIASED_POINT_SIZE_RANGE)[1] || 64;
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuffer);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.UNSIGNED_SHORT, false, 0, 0);  // scaled by u_xy_scale
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colourBuffer);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.indexBuffer);
    gl.bindVertexArray(null);
  }

  setPoints(xy, count, xyMax) {
    const gl = this.gl;
    this.count = count;
    this.xyScale = 1 / xyMax;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, xy, gl.STATIC_DRAW);
  }

  setColours(rgba) {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colourBuffer);
    gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.DYNAMIC_DRAW);
  }

  setHighlights(indices, count) {
    const gl = this.gl;
    this.highlights = count;
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, this.indexBuffer);
    gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, indices.subarray(0, count), gl.DYNAMIC_DRAW);
    gl.bindVertexArray(null);
  }

  resize(width, height) {
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
  }

  draw(frame) {
    const { gl } = this;
    const { width, height } = this.canvas;
    const dpr = frame.dpr;
    gl.viewport(0, 0, width, height);
    gl.clearColor(BACKGROUND[0] / 255, BACKGROUND[1] / 255, BACKGROUND[2] / 255, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!this.count) return;
    gl.useProgram(this.program);
    gl.enable(gl.BLEND);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.bindVertexArray(this.vao);
    gl.uniform1f(this.u.u_xy_scale, this.xyScale);
    gl.uniform2f(this.u.u_centre, frame.cx, frame.cy);
    gl.uniform2f(this.u.u_scale, (2 * frame.scale * dpr) / width, (2 * frame.scale * dpr) / height);
    gl.uniform1f(this.u.u_size, Math.min(this.maxPointSize, frame.size * dpr));
    gl.uniform1f(this.u.u_opacity, frame.opacity);
    gl.uniform1f(this.u.u_dim, frame.dim ? 0.45 : 1);
    const h = hexToRgb(HIGHLIGHT);
    gl.uniform3f(this.u.u_highlight, h[0] / 255, h[1] / 255, h[2] / 255);
    gl.uniform1i(this.u.u_mode, 0);
    gl.drawArrays(gl.POINTS, 0, this.count);
    if (frame.dim && this.highlights) {
      gl.uniform1i(this.u.u_mode, 1);
      gl.drawElements(gl.POINTS, this.highlights, gl.UNSIGNED_INT, 0);
    }
    gl.uniform1i(this.u.u_mode, 2);
    for (const index of [frame.hover, frame.pinned]) {
      if (index >= 0 && index < this.count) gl.drawArrays(gl.POINTS, index, 1);
    }
    gl.bindVertexArray(null);
  }
}

class CanvasRenderer {
  constructor(canvas) {
    this.kind = 'canvas2d';
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.count = 0;
    this.highlights = 0;
    this.indices = new Uint32Array(0);
  }

  setPoints(xy, count, xyMax) {
    this.xy = xy;
    this.count = count;
    this.xyScale = 1 / xyMax;
  }

  setColours(rgba) {
    this.rgba = rgba;
  }

  setHighlights(indices, count) {
    this.indices = indices;
    this.highlights = count;
  }

  resize(width, height) {
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.image = null;
    }
  }

  draw(frame) {
    const { width, height } = this.canvas;
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = this.ctx.createImageData(width, height);
    }
    const data = this.image.data;
    for (let i = 0; i < data.length; i += 4) {
      data[i] = BACKGROUND[0]; data[i + 1] = BACKGROUND[1]; data[i + 2] = BACKGROUND[2]; data[i + 3] = 255;
    }
    const dpr = frame.dpr;
    const k = frame.scale * dpr * this.xyScale;
    const ox = width / 2 - frame.cx * frame.scale * dpr;
    const oy = height / 2 + frame.cy * frame.scale * dpr;
    const size = Math.max(1, Math.round(frame.size * dpr));
    const { xy, rgba } = this;
    const alpha = frame.opacity * (frame.dim ? 0.45 : 1);
    const plot = (i, r, g, b, a, s) => {
      const px = Math.round(ox + xy[2 * i] * k - s / 2);
      const py = Math.round(oy - xy[2 * i + 1] * k - s / 2);
      if (px + s <= 0 || py + s <= 0 || px >= width || py >= height) return;
      const x0 = Math.max(0, px), x1 = Math.min(width, px + s);
      const y0 = Math.max(0, py), y1 = Math.min(height, py + s);
      const round = s >= 4, c = (s - 1) / 2, r2 = (s / 2) * (s / 2) + 0.25;
      for (let y = y0; y < y1; y++) {
        let o = (y * width + x0) * 4;
        const dy = y - py - c;
        for (let x = x0; x < x1; x++, o += 4) {
          if (round) { const dx = x - px - c; if (dx * dx + dy * dy > r2) continue; }
          data[o] += (r - data[o]) * a;
          data[o + 1] += (g - data[o + 1]) * a;
          data[o + 2] += (b - data[o + 2]) * a;
        }
      }
    };
    // While the view moves, a large map is drawn from an even subsample (the points are in
    // Z-order, so every k-th point covers the map evenly); the full frame follows when it settles.
    const stride = frame.stride || 1;
    for (let i = 0; i < this.count; i += stride) {
      const o = i * 4;
      if (rgba[o + 3] === 0) continue;
      let r = rgba[o], g = rgba[o + 1], b = rgba[o + 2];
      if (frame.dim) {
        const l = 0.299 * r + 0.587 * g + 0.114 * b;
        r = (l + (r - l) * 0.35) * 0.8; g = (l + (g - l) * 0.35) * 0.8; b = (l + (b - l) * 0.35) * 0.8;
      }
      plot(i, r, g, b, alpha, size);
    }
    if (frame.dim && this.highlights) {
      const [r, g, b] = hexToRgb(HIGHLIGHT);
      const s = Math.max(3, Math.round(size * 1.5));
      for (let j = 0; j < this.highlights; j++) plot(this.indices[j], r, g, b, 1, s);
    }
    this.ctx.putImageData(this.image, 0, 0);
    const ctx = this.ctx;
    for (const index of [frame.hover, frame.pinned]) {
      if (!(index >= 0 && index < this.count)) continue;
      const x = ox + xy[2 * index] * k, y = oy - xy[2 * index + 1] * k;
      ctx.beginPath();
      ctx.arc(x, y, Math.max(7, size + 4), 0, Math.PI * 2);
      ctx.lineWidth = 2 * dpr;
      ctx.strokeStyle = '#ffffff';
      ctx.stroke();
    }
  }
}
