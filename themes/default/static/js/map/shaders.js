// GLSL for the WebGL2 point renderer.

export const POINT_VERTEX = `#version 300 es
precision highp float;
precision highp int;
layout(location = 0) in vec2 a_pos;     // quantised uint16 coordinates
uniform float u_xy_scale;               // 1 / meta.encoding.xy_max: quantised -> world [0, 1]
layout(location = 1) in vec4 a_colour;  // uint8 normalised; alpha 0 = filtered out
uniform vec2 u_centre;                  // world point at the canvas centre
uniform vec2 u_scale;                   // world unit -> clip space
uniform float u_size;                   // device pixels
uniform float u_opacity;
uniform int u_mode;                     // 0 all points, 1 highlighted, 2 ring (hover/pinned)
uniform float u_dim;                    // 1 normally, < 1 dims points while a search is active
uniform vec3 u_highlight;
out vec4 v_colour;
out float v_size;
void main() {
  if (a_colour.a < 0.5) {
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
    gl_PointSize = 0.0;
    return;
  }
  gl_Position = vec4((a_pos * u_xy_scale - u_centre) * u_scale, 0.0, 1.0);
  if (u_mode == 1) {
    v_colour = vec4(u_highlight, 1.0);
    gl_PointSize = max(u_size * 1.5, 4.0);
  } else if (u_mode == 2) {
    v_colour = vec4(1.0, 1.0, 1.0, 1.0);
    gl_PointSize = max(u_size * 2.0 + 10.0, 16.0);
  } else {
    vec3 c = a_colour.rgb;
    if (u_dim < 1.0) c = mix(vec3(dot(c, vec3(0.299, 0.587, 0.114))), c, 0.35) * 0.8;
    v_colour = vec4(c, u_opacity * u_dim);
    gl_PointSize = u_size;
  }
  v_size = gl_PointSize;
}`;

export const POINT_FRAGMENT = `#version 300 es
precision highp float;
precision highp int;
in vec4 v_colour;
in float v_size;
uniform int u_mode;
out vec4 outColour;
void main() {
  float d = length(gl_PointCoord - vec2(0.5)) * v_size;  // distance from the centre in pixels
  float r = v_size * 0.5;
  float alpha;
  if (u_mode == 2) {
    float ring = abs(d - (r - 2.5));
    alpha = 1.0 - smoothstep(1.0, 2.0, ring);
  } else if (v_size < 2.5) {
    alpha = 1.0;  // tiny points: squares are faster and look the same
  } else {
    alpha = 1.0 - smoothstep(r - 1.0, r, d);
  }
  if (alpha <= 0.0) discard;
  outColour = vec4(v_colour.rgb, v_colour.a * alpha);
}`;
