/** The detached gabled house with its garden. */

import { frontalWindow, sky, tree, type WindowStyle } from './scenery.js';
import { ellipse, inQuad, lerpPoint, line, type Point, polygon, rect, type Scene, shade, subQuad } from './svg.js';

export const gabledHouse: Scene = {
  kind: 'house-gabled',
  description:
    'Detached family house with a gabled roof and chimney, porch, shuttered windows, lawn, path, fence and trees',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const horizon = h * 0.66;
    const wall = canvas.pick(['#f1ebe0', '#e7dcc6', '#d9e1e4', '#efe3d1']);
    const roof = canvas.pick(['#5b3a32', '#3e4650', '#6b4434', '#46403b']);
    const shutter = canvas.pick(['#3f5f4f', '#3d4f6b', '#7a3b33']);
    let out = sky(canvas, horizon, canvas.chance(0.3));
    out += rect(
      0,
      horizon,
      w,
      h - horizon,
      canvas.linear([
        [0, '#7fa25a'],
        [1, '#4f7a39'],
      ]),
    );
    out += rect(0, horizon - 18 * unit, w, 22 * unit, '#4d6b3d', `opacity="0.8" filter="${canvas.blur(6)}"`);
    // Front gable face, then the side wall and roof plane receding towards a vanishing point on the right.
    const vanish: Point = [w * 1.9, h * 0.6];
    const recede = (point: Point, amount: number): Point => lerpPoint(point, vanish, amount);
    const frontLeft = w * 0.2;
    const frontRight = w * 0.52;
    const eave = h * 0.42;
    const base = h * 0.82;
    const apex: Point = [(frontLeft + frontRight) / 2, h * 0.17];
    const depth = 0.24;
    const sideTop = recede([frontRight, eave], depth);
    const sideBottom = recede([frontRight, base], depth);
    const ridgeBack = recede(apex, depth);
    out += polygon([[frontRight, eave], sideTop, sideBottom, [frontRight, base]], shade(wall, -0.22));
    // Side windows, drawn in the side wall's own perspective.
    const sideQuad: [Point, Point, Point, Point] = [[frontRight, eave], sideTop, sideBottom, [frontRight, base]];
    for (const [a0, a1] of [
      [0.15, 0.4],
      [0.58, 0.83],
    ] as const) {
      out += polygon(subQuad(sideQuad, a0, 0.22, a1, 0.55), '#364555');
      out += polygon(subQuad(sideQuad, a0, 0.55, a1, 0.58), '#f4f1ea');
    }
    out += polygon(
      [
        apex,
        ridgeBack,
        recede([frontRight + 14 * unit, eave + 6 * unit], depth),
        [frontRight + 14 * unit, eave + 6 * unit],
      ],
      roof,
    );
    const roofQuad: [Point, Point, Point, Point] = [
      apex,
      ridgeBack,
      recede([frontRight + 14 * unit, eave + 6 * unit], depth),
      [frontRight + 14 * unit, eave + 6 * unit],
    ];
    for (let course = 1; course < 9; course++) {
      out += line(inQuad(roofQuad, 0, course / 9), inQuad(roofQuad, 1, course / 9), shade(roof, -0.3), 1.3 * unit);
    }
    const chimney = subQuad(roofQuad, 0.55, 0.1, 0.72, 0.35);
    const chimneyTop = chimney[0][1] - 40 * unit;
    out += polygon([[chimney[0][0], chimneyTop], [chimney[1][0], chimneyTop], chimney[2], chimney[3]], '#8a4f3c');
    out += rect(
      chimney[0][0] - 3 * unit,
      chimneyTop - 6 * unit,
      chimney[1][0] - chimney[0][0] + 6 * unit,
      7 * unit,
      '#6d3d2f',
    );
    // Front face with bargeboards.
    const front = canvas.linear(
      [
        [0, shade(wall, 0.08)],
        [1, shade(wall, -0.05)],
      ],
      0,
      0,
      1,
      1,
    );
    out += polygon([[frontLeft, eave], apex, [frontRight, eave], [frontRight, base], [frontLeft, base]], front);
    out += polygon(
      [
        [frontLeft - 16 * unit, eave + 8 * unit],
        apex,
        [apex[0], apex[1] + 12 * unit],
        [frontLeft - 4 * unit, eave + 12 * unit],
      ],
      shade(roof, -0.1),
    );
    out += polygon(
      [
        [frontRight + 16 * unit, eave + 8 * unit],
        apex,
        [apex[0], apex[1] + 12 * unit],
        [frontRight + 4 * unit, eave + 12 * unit],
      ],
      shade(roof, -0.2),
    );
    out += polygon(
      [
        [frontLeft, eave + 10 * unit],
        [apex[0], apex[1] + 14 * unit],
        [frontRight, eave + 10 * unit],
        [frontRight, eave + 28 * unit],
        [apex[0], apex[1] + 32 * unit],
        [frontLeft, eave + 28 * unit],
      ],
      '#000000',
      `opacity="0.18" filter="${canvas.blur(4)}"`,
    );
    const frontWidth = frontRight - frontLeft;
    const style: WindowStyle = { frame: '#f7f5f0', sill: '#f7f5f0', panes: [2, 2], lit: false };
    const upperY = eave + 10 * unit;
    out += frontalWindow(canvas, apex[0] - frontWidth * 0.09, h * 0.27, frontWidth * 0.18, h * 0.09, {
      ...style,
      panes: [2, 1],
    });
    for (const fraction of [0.14, 0.62]) {
      const x = frontLeft + frontWidth * fraction;
      const width = frontWidth * 0.24;
      out += rect(x - 14 * unit, upperY, 12 * unit, h * 0.13, shutter);
      out += rect(x + width + 2 * unit, upperY, 12 * unit, h * 0.13, shutter);
      out += frontalWindow(canvas, x, upperY, width, h * 0.13, { ...style, lit: canvas.chance(0.2) });
    }
    // Ground floor: a porch over the door, a wide window.
    const doorX = frontLeft + frontWidth * 0.16;
    const doorWidth = frontWidth * 0.18;
    const doorTop = base - h * 0.18;
    out += rect(doorX, doorTop, doorWidth, base - doorTop, shade(shutter, -0.1));
    out += rect(doorX + doorWidth * 0.2, doorTop + 8 * unit, doorWidth * 0.6, h * 0.05, '#a9c0cf', 'opacity="0.8"');
    out += ellipse(doorX + doorWidth * 0.8, doorTop + (base - doorTop) * 0.55, 2.5 * unit, 2.5 * unit, '#d8b86a');
    out += polygon(
      [
        [doorX - 18 * unit, doorTop - 4 * unit],
        [doorX + doorWidth / 2, doorTop - 30 * unit],
        [doorX + doorWidth + 18 * unit, doorTop - 4 * unit],
      ],
      roof,
    );
    out += rect(
      doorX - 14 * unit,
      doorTop - 4 * unit,
      doorWidth + 28 * unit,
      10 * unit,
      '#000000',
      `opacity="0.25" filter="${canvas.blur(3)}"`,
    );
    out += rect(doorX - 10 * unit, doorTop - 4 * unit, 5 * unit, base - doorTop + 4 * unit, '#f7f5f0');
    out += rect(doorX + doorWidth + 5 * unit, doorTop - 4 * unit, 5 * unit, base - doorTop + 4 * unit, '#f7f5f0');
    out += frontalWindow(canvas, frontLeft + frontWidth * 0.5, base - h * 0.16, frontWidth * 0.36, h * 0.1, {
      ...style,
      panes: [3, 2],
    });
    out += rect(frontLeft - 4 * unit, base - 8 * unit, frontWidth + 8 * unit, 8 * unit, shade(wall, -0.35));
    // Path, fence, shrubs and trees.
    out += polygon(
      [
        [doorX - 4 * unit, base],
        [doorX + doorWidth + 4 * unit, base],
        [doorX + doorWidth + w * 0.08, h],
        [doorX - w * 0.05, h],
      ],
      '#cdbfa8',
    );
    for (let post = 0; post < 40; post++) {
      const x = (post / 39) * w;
      if (x > doorX - w * 0.06 && x < doorX + doorWidth + w * 0.09) continue;
      out += polygon(
        [
          [x - 4 * unit, h * 0.92],
          [x, h * 0.9],
          [x + 4 * unit, h * 0.92],
          [x + 4 * unit, h],
          [x - 4 * unit, h],
        ],
        '#f4f1ea',
      );
      out += rect(x + 4 * unit, h * 0.92, 3 * unit, h * 0.08, '#000000', 'opacity="0.2"');
    }
    out += line([0, h * 0.94], [doorX - w * 0.06, h * 0.94], '#e7e2d8', 4 * unit);
    out += line([doorX + doorWidth + w * 0.09, h * 0.94], [w, h * 0.94], '#e7e2d8', 4 * unit);
    const shrub = canvas.radial([
      [0, '#7aa456'],
      [1, '#355e2c'],
    ]);
    for (const x of [frontLeft + 10 * unit, frontLeft + frontWidth * 0.55, frontLeft + frontWidth * 0.85]) {
      out += ellipse(x, base, 26 * unit, 16 * unit, shrub);
    }
    out += tree(canvas, w * 0.08, h * 0.86, 120 * unit);
    out += tree(canvas, w * 0.9, h * 0.8, 95 * unit);
    return out;
  },
};
