/** The contemporary apartment block: slabs, glass balconies, timber fins. */

import { sky, tree } from './scenery.js';
import { ellipse, line, polygon, rect, type Scene, shade } from './svg.js';

export const modernFacade: Scene = {
  kind: 'facade-modern',
  description: 'Contemporary apartment block: concrete floor slabs, deep glass balconies, timber fins and street trees',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const concrete = canvas.pick(['#dcd8d0', '#d2d3d1', '#e4dfd5']);
    const timber = canvas.pick(['#a8784c', '#8c6140', '#b98b5e']);
    const floors = canvas.integer(4, 5);
    const bays = canvas.integer(3, 5);
    const curtain = canvas.linear(
      [
        [0, '#efe4cf'],
        [0.5, '#d9c8a8'],
        [1, '#efe4cf'],
      ],
      0,
      0,
      1,
      0,
    );
    const leaves = canvas.radial(
      [
        [0, '#8fbf6a'],
        [1, '#2f5a2a'],
      ],
      0.35,
      0.3,
      0.7,
    );
    const left = w * 0.12;
    const right = w * 0.88;
    const top = h * 0.08;
    const ground = h * 0.84;
    let out = sky(canvas, ground, false);
    out += rect(right, top + h * 0.12, w - right, ground - top, shade('#9aa3ab', -0.1));
    out += rect(0, top + h * 0.2, left, ground - top, shade('#b7b1a6', -0.2));
    const floorHeight = (ground - top) / (floors + 0.4);
    const bay = (right - left) / bays;
    const glass = canvas.linear(
      [
        [0, '#b5cade'],
        [0.35, '#4e6478'],
        [1, '#1b2530'],
      ],
      0,
      0,
      0.6,
      1,
    );
    const recess = canvas.linear([
      [0, '#000000', 0.55],
      [1, '#000000', 0.1],
    ]);
    out += rect(left, top, right - left, ground - top, shade(concrete, -0.1));
    for (let floor = 0; floor < floors; floor++) {
      const slabTop = top + floor * floorHeight;
      for (let column = 0; column < bays; column++) {
        const x = left + column * bay;
        out += rect(x + 4 * unit, slabTop + 12 * unit, bay - 8 * unit, floorHeight - 12 * unit, glass);
        for (let mullion = 1; mullion < 3; mullion++) {
          const mx = x + 4 * unit + ((bay - 8 * unit) * mullion) / 3;
          out += line([mx, slabTop + 12 * unit], [mx, slabTop + floorHeight], '#2a2f33', 2 * unit);
        }
        out += rect(x + 4 * unit, slabTop + 12 * unit, bay - 8 * unit, floorHeight * 0.35, recess);
        // A diagonal sky reflection across the pane, and sometimes a drawn curtain behind it.
        out += polygon(
          [
            [x + bay * 0.2, slabTop + 12 * unit],
            [x + bay * 0.45, slabTop + 12 * unit],
            [x + bay * 0.2, slabTop + floorHeight],
            [x - bay * 0.05 + 4 * unit, slabTop + floorHeight],
          ],
          '#ffffff',
          'opacity="0.12"',
        );
        if (canvas.chance(0.3)) {
          const curtainX = x + 4 * unit + (canvas.chance(0.5) ? 0 : (bay - 8 * unit) * (2 / 3));
          out += rect(
            curtainX,
            slabTop + 14 * unit,
            (bay - 8 * unit) / 3,
            floorHeight - 14 * unit,
            curtain,
            'opacity="0.8"',
          );
        }
        // Balcony: glass balustrade with a top rail; sometimes plants.
        const railTop = slabTop + floorHeight * 0.62;
        out += rect(x + 6 * unit, railTop, bay - 12 * unit, floorHeight * 0.38, '#e8f0f4', 'opacity="0.28"');
        out += line([x + 6 * unit, railTop], [x + bay - 6 * unit, railTop], '#3a3f44', 2.5 * unit);
        if (canvas.chance(0.35)) {
          const plantX = x + canvas.between(0.25, 0.75) * bay;
          out += rect(plantX - 16 * unit, railTop + 2 * unit, 32 * unit, 12 * unit, '#6f6a63');
          for (let leaf = 0; leaf < 4; leaf++) {
            const dx = canvas.between(-14, 14) * unit;
            const radius = canvas.between(7, 11) * unit;
            out += ellipse(plantX + dx, railTop - canvas.between(0, 10) * unit, radius, radius * 0.85, leaves);
          }
        }
      }
      // The slab projects and shades the glazing below it.
      out += rect(
        left - 10 * unit,
        slabTop + floorHeight - 4 * unit,
        right - left + 20 * unit,
        22 * unit,
        '#000000',
        `opacity="0.35" filter="${canvas.blur(4)}"`,
      );
      out += rect(left - 10 * unit, slabTop, right - left + 20 * unit, 12 * unit, concrete);
      out += rect(left - 10 * unit, slabTop + 10 * unit, right - left + 20 * unit, 2 * unit, shade(concrete, -0.3));
    }
    // Timber fins in front of the glazing, lit from the left.
    for (let column = 0; column <= bays; column++) {
      const x = left + column * bay;
      out += rect(x - 5 * unit, top, 10 * unit, ground - top, timber);
      out += rect(x + 2 * unit, top, 3 * unit, ground - top, shade(timber, -0.35));
      out += rect(x + 5 * unit, top, 8 * unit, ground - top, '#000000', 'opacity="0.2"');
    }
    out += rect(left - 10 * unit, top - 8 * unit, right - left + 20 * unit, 14 * unit, concrete);
    out += rect(
      0,
      ground,
      w,
      h - ground,
      canvas.linear([
        [0, '#8e8b85'],
        [1, '#c2beb6'],
      ]),
    );
    out += rect(0, ground, w, 5 * unit, '#000000', 'opacity="0.3"');
    out += tree(canvas, w * 0.08, h * 0.97, 110 * unit);
    out += tree(canvas, w * 0.9, h * 0.99, 130 * unit);
    return out;
  },
};
