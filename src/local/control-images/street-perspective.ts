/** The city street in one-point perspective. */

import { Perspective, sky, tree } from './scenery.js';
import { ellipse, line, type Point, polygon, rect, type Scene, shade, subQuad } from './svg.js';

export const streetPerspective: Scene = {
  kind: 'street-perspective',
  description:
    'A city street in one-point perspective: facades on both sides, pavements, lamp posts and a vanishing road',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const view = new Perspective(canvas, w * canvas.between(0.45, 0.55), h * 0.46);
    const far = 14;
    let out = sky(canvas, h, canvas.chance(0.35));
    // Distant skyline at the vanishing point.
    const horizonY = view.vanishY;
    for (let tower = 0; tower < 7; tower++) {
      const x = view.vanishX + (tower - 3) * 16 * unit + canvas.between(-4, 4) * unit;
      const height = canvas.between(20, 60) * unit;
      out += rect(x, horizonY - height, 14 * unit, height + 2, '#8e9bb0', 'opacity="0.8"');
    }
    // Road and pavements.
    out += polygon(
      [view.at(0, 1, 1), view.at(1, 1, 1), view.at(1, 1, far), view.at(0, 1, far)],
      canvas.linear([
        [0, '#6f7277'],
        [1, '#3f4246'],
      ]),
    );
    out += polygon([view.at(0, 1, 1), view.at(0.2, 1, 1), view.at(0.2, 1, far), view.at(0, 1, far)], '#b9b4aa');
    out += polygon([view.at(0.8, 1, 1), view.at(1, 1, 1), view.at(1, 1, far), view.at(0.8, 1, far)], '#b3aea4');
    out += line(view.at(0.2, 1, 1), view.at(0.2, 1, far), '#e6e1d6', 3 * unit);
    out += line(view.at(0.8, 1, 1), view.at(0.8, 1, far), '#e6e1d6', 3 * unit);
    for (let dash = 0; dash < 12; dash++) {
      const z0 = 1 + dash * 1.1;
      out += polygon(
        [view.at(0.495, 1, z0), view.at(0.505, 1, z0), view.at(0.505, 1, z0 + 0.5), view.at(0.495, 1, z0 + 0.5)],
        '#f2efe6',
      );
    }
    // Building blocks along both sides, each with its own height, colour and window grid.
    const colours = ['#c7a27c', '#b86b4b', '#d9d1c1', '#8f9ca6', '#c9b48f', '#a85f46', '#e0d6c2'];
    for (const side of [0, 1] as const) {
      let z = 1;
      const u = side === 0 ? 0 : 1;
      const blocks: string[] = [];
      while (z < far) {
        const length = canvas.between(1.2, 2.6);
        const z1 = Math.min(far, z + length);
        const roof = canvas.between(-0.9, 0.05);
        const colour = canvas.pick(colours);
        const face = view.sideFace(u, roof, 1, z, z1);
        let block = polygon(face, shade(colour, side === 0 ? 0 : -0.25));
        const faceQuad: [Point, Point, Point, Point] = [
          face[0] ?? [0, 0],
          face[1] ?? [0, 0],
          face[2] ?? [0, 0],
          face[3] ?? [0, 0],
        ];
        const storeys = Math.max(2, Math.round((1 - roof) / 0.22));
        const windowsAlong = Math.max(2, Math.round(length * 2.2));
        for (let storey = 0; storey < storeys - 1; storey++) {
          for (let along = 0; along < windowsAlong; along++) {
            const a0 = (along + 0.25) / windowsAlong;
            const a1 = (along + 0.75) / windowsAlong;
            const d0 = (storey + 0.25) / storeys;
            const d1 = (storey + 0.7) / storeys;
            const lit = canvas.chance(0.15);
            block += polygon(subQuad(faceQuad, a0, d0, a1, d1), lit ? '#f0d9a0' : '#3b4654');
            block += polygon(subQuad(faceQuad, a0, d1, a1, d1 + 0.02), '#ece6da', 'opacity="0.7"');
          }
        }
        // Ground-floor shopfronts and the cornice line.
        block += polygon(subQuad(faceQuad, 0.05, 1 - 0.8 / storeys, 0.95, 0.98), '#2d3439', 'opacity="0.85"');
        block += polygon(subQuad(faceQuad, 0, 0, 1, 0.025), shade(colour, -0.35));
        blocks.push(block);
        z = z1;
      }
      // Far blocks first, so nearer ones paint over them.
      out += blocks.reverse().join('');
    }
    // Lamp posts along the left pavement and street trees along the right.
    for (let index = 0; index < 5; index++) {
      const z = 1.3 + index * 2.2;
      const base = view.at(0.16, 1, z);
      const head = view.at(0.16, 0.42, z);
      const arm = view.at(0.24, 0.42, z);
      out += line(base, head, '#1f2326', 5 * unit * (1 / z) * 1.6);
      out += line(head, arm, '#1f2326', 3 * unit * (1 / z) * 1.6);
      out += ellipse(arm[0], arm[1], ((7 * unit) / z) * 1.6, ((3 * unit) / z) * 1.6, '#fff0c4');
    }
    for (let index = 0; index < 4; index++) {
      const z = 1.8 + index * 2.8;
      const base = view.at(0.88, 1, z);
      out += tree(canvas, base[0], base[1], (170 * unit) / z);
    }
    return out;
  },
};
