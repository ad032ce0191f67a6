/** The brick apartment facade seen straight on. */

import { frontalWindow, sky, type WindowStyle } from './scenery.js';
import { ellipse, line, num, type Point, polygon, rect, type Scene, shade, subQuad } from './svg.js';

export const brickFacade: Scene = {
  kind: 'facade-brick',
  description: 'Brick apartment building seen straight on: rows of sash windows, balconies, a cornice and a shopfront',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const brick = canvas.pick(['#9c4a32', '#8a3f2b', '#a65a3c', '#7e4a3a']);
    const trim = canvas.pick(['#efe7d8', '#e6ddd0', '#f4f0e6']);
    const floors = canvas.integer(3, 4);
    const columns = canvas.integer(4, 6);
    const left = w * 0.07;
    const right = w * 0.93;
    const top = h * 0.1;
    const ground = h * 0.86;
    const brickWidth = 22 * unit;
    const brickHeight = 7.5 * unit;
    const bricks = canvas.define(
      (id) =>
        `<pattern id="${id}" width="${num(brickWidth)}" height="${num(brickHeight * 2)}" patternUnits="userSpaceOnUse">` +
        rect(0, 0, brickWidth, brickHeight * 2, shade(brick, 0.45)) +
        rect(0.8 * unit, 0.8 * unit, brickWidth - 1.6 * unit, brickHeight - 1.6 * unit, brick) +
        rect(
          -brickWidth / 2 + 0.8 * unit,
          brickHeight + 0.8 * unit,
          brickWidth - 1.6 * unit,
          brickHeight - 1.6 * unit,
          shade(brick, -0.06),
        ) +
        rect(
          brickWidth / 2 + 0.8 * unit,
          brickHeight + 0.8 * unit,
          brickWidth - 1.6 * unit,
          brickHeight - 1.6 * unit,
          shade(brick, 0.04),
        ) +
        '</pattern>',
    );
    const light = canvas.linear(
      [
        [0, '#ffffff', 0.12],
        [0.6, '#000000', 0],
        [1, '#000000', 0.22],
      ],
      0,
      0,
      1,
      0,
    );
    let out = sky(canvas, ground, false);
    // Neighbours at the edges, set back and darker: the first depth cue.
    out += rect(0, top + h * 0.08, left + 4 * unit, ground - top, shade('#b8b0a4', -0.25));
    out += rect(right - 4 * unit, top + h * 0.04, w - right + 4 * unit, ground - top, shade('#c9c1b2', -0.3));
    out += rect(left, top, right - left, ground - top, bricks);
    out += rect(left, top, right - left, ground - top, light);
    // Cornice with dentils, and the shadow it casts.
    out += rect(left - 8 * unit, top - 14 * unit, right - left + 16 * unit, 16 * unit, trim);
    out += rect(left - 8 * unit, top + 2 * unit, right - left + 16 * unit, 4 * unit, shade(trim, -0.2));
    for (let x = left; x < right; x += 12 * unit)
      out += rect(x, top + 6 * unit, 6 * unit, 6 * unit, shade(trim, -0.05));
    out += rect(
      left,
      top + 12 * unit,
      right - left,
      16 * unit,
      canvas.linear([
        [0, '#000000', 0.35],
        [1, '#000000', 0],
      ]),
    );

    const shopTop = ground - (ground - top) * 0.24;
    const floorHeight = (shopTop - top - 16 * unit) / floors;
    const bay = (right - left) / columns;
    const windowStyle: WindowStyle = { frame: trim, sill: trim, panes: [2, 3], lit: false };
    for (let floor = 0; floor < floors; floor++) {
      const rowTop = top + 16 * unit + floor * floorHeight;
      const balconyFloor = floor === floors - 2;
      for (let column = 0; column < columns; column++) {
        const windowWidth = bay * 0.5;
        const windowHeight = floorHeight * (balconyFloor ? 0.74 : 0.6);
        const x = left + column * bay + (bay - windowWidth) / 2;
        const y = rowTop + floorHeight * 0.16;
        out += rect(x - 5 * unit, y - 9 * unit, windowWidth + 10 * unit, 7 * unit, trim);
        out += frontalWindow(canvas, x, y, windowWidth, windowHeight, {
          ...windowStyle,
          lit: canvas.chance(0.12),
          panes: balconyFloor ? [2, 4] : [2, 3],
        });
        if (balconyFloor) {
          const slabY = y + windowHeight;
          out += rect(
            x - 12 * unit,
            slabY + 10 * unit,
            windowWidth + 24 * unit,
            14 * unit,
            '#000000',
            `opacity="0.3" filter="${canvas.blur(3)}"`,
          );
          out += rect(x - 12 * unit, slabY, windowWidth + 24 * unit, 6 * unit, shade(trim, -0.1));
          const railTop = slabY - windowHeight * 0.32;
          out += line([x - 12 * unit, railTop], [x + windowWidth + 12 * unit, railTop], '#2c2a28', 2.4 * unit);
          for (let bar = x - 10 * unit; bar <= x + windowWidth + 10 * unit; bar += 6 * unit) {
            out += line([bar, railTop], [bar, slabY], '#2c2a28', 1.3 * unit);
          }
        }
      }
      out += rect(left, rowTop + floorHeight - 3 * unit, right - left, 3 * unit, shade(brick, -0.2), 'opacity="0.6"');
    }

    // Shopfront: stone base, glazing, a striped awning in slight perspective, a door with a step.
    out += rect(left, shopTop, right - left, ground - shopTop, shade(trim, -0.08));
    out += rect(left, shopTop, right - left, 10 * unit, shade(trim, -0.25));
    const doorWidth = bay * 0.55;
    const doorX = left + bay * 0.22;
    const glassTop = shopTop + 34 * unit;
    const shopGlass = canvas.linear(
      [
        [0, '#e9d6a8'],
        [1, '#6c5a3e'],
      ],
      0,
      0,
      0.4,
      1,
    );
    out += rect(
      doorX + doorWidth + bay * 0.4,
      glassTop,
      right - left - bay * 1.4 - doorWidth,
      ground - glassTop - 16 * unit,
      shopGlass,
    );
    for (let mullion = doorX + doorWidth + bay * 0.4; mullion < right - bay * 0.6; mullion += bay) {
      out += line([mullion, glassTop], [mullion, ground - 16 * unit], shade(trim, -0.5), 3 * unit);
    }
    out += rect(doorX, glassTop - 6 * unit, doorWidth, ground - glassTop + 6 * unit, '#2f3b33');
    out += rect(
      doorX + doorWidth * 0.15,
      glassTop + 6 * unit,
      doorWidth * 0.7,
      (ground - glassTop) * 0.45,
      '#8aa3a8',
      'opacity="0.7"',
    );
    out += rect(doorX - 6 * unit, ground - 6 * unit, doorWidth + 12 * unit, 6 * unit, shade(trim, -0.2));
    const awningColour = canvas.pick(['#2d5b4c', '#7b2e2e', '#2c3e66']);
    const awning: [Point, Point, Point, Point] = [
      [doorX + doorWidth + bay * 0.3, shopTop + 14 * unit],
      [right - bay * 0.45, shopTop + 14 * unit],
      [right - bay * 0.4, shopTop + 40 * unit],
      [doorX + doorWidth + bay * 0.25, shopTop + 40 * unit],
    ];
    out += polygon(awning, awningColour);
    for (let stripe = 0; stripe < 12; stripe += 2) {
      out += polygon(subQuad(awning, stripe / 12, 0, (stripe + 1) / 12, 1), '#f1ece2', 'opacity="0.85"');
    }
    out += polygon(
      [awning[3], awning[2], [awning[2][0], awning[2][1] + 14 * unit], [awning[3][0], awning[3][1] + 14 * unit]],
      '#000000',
      `opacity="0.3" filter="${canvas.blur(4)}"`,
    );

    // Pavement, kerb and road, with a lamp post.
    out += rect(
      0,
      ground,
      w,
      h - ground,
      canvas.linear([
        [0, '#a9a49b'],
        [1, '#cbc6bd'],
      ]),
    );
    for (let joint = 0; joint < 14; joint++) {
      const x = (joint / 13) * w;
      out += line([x, ground], [w / 2 + (x - w / 2) * 1.6, h], '#8f8a82', 1 * unit);
    }
    out += rect(0, ground, w, 6 * unit, '#000000', 'opacity="0.25"');
    out += rect(0, h - 10 * unit, w, 10 * unit, '#6b6964');
    const lampX = left + bay * (columns - 0.3);
    out += rect(lampX - 3 * unit, shopTop - 40 * unit, 6 * unit, ground - shopTop + 40 * unit + 20 * unit, '#23272b');
    out += ellipse(lampX, shopTop - 46 * unit, 11 * unit, 14 * unit, '#23272b');
    out += ellipse(lampX, shopTop - 44 * unit, 6 * unit, 8 * unit, '#fff1c9');
    return out;
  },
};
