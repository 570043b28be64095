// A small meta.json and points object in the shape the mapdata stage writes.
export const ENCODING = { xy_max: 65535, score_max: 254, score_missing: 255, no_cluster: 65535 };

export function makeMeta(overrides = {}) {
  return {
    format: 1,
    encoding: ENCODING,
    count: 4,
    bounds: { x0: -1, y0: -1, span: 2 },
    colour_by: ['cluster', 'domain', 'aesthetic'],
    domains: ['a.com', 'b.com', 'other'],
    domain_counts: [2, 1, 1],
    scores: [
      { name: 'aesthetic', label: 'Aesthetic score', min: 2, max: 8, present: 3, index: 0 },
      { name: 'similarity', label: 'CLIP similarity', min: 0.2, max: 0.4, present: 0, index: 1 },
    ],
    clusters: [{ name: 'coarse', column: 'cluster_coarse', labels: ['Cats', 'Dogs'], size: [1, 3], x: [0.2, 0.8], y: [0.2, 0.8] }],
    ...overrides,
  };
}

/** Points with quantised positions (xy pairs), domains, clusters and aesthetic bytes. */
export function makePoints({ xy, domain, cluster, aesthetic }) {
  const count = xy.length;
  const scores = new Uint8Array(count * 4).fill(255);
  aesthetic.forEach((v, i) => { scores[i * 4] = v; });
  return {
    count,
    xy: Uint16Array.from(xy.flat()),
    xyMax: ENCODING.xy_max,
    domain: Uint16Array.from(domain),
    clusters: { coarse: Uint16Array.from(cluster) },
    scores,
  };
}
