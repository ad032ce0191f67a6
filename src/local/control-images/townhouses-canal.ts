/** The row of canal townhouses and their reflection. */

import { frontalWindow, sky, type WindowStyle } from './scenery.js';
import { line, num, type Point, polygon, rect, type Scene, shade } from './svg.js';

export const townhouses: Scene = {
  kind: 'townhouses-canal',
  description:
    'A row of narrow canal townhouses with stepped, bell and pointed gables, tall windows, and their reflection',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const waterline = h * 0.8;
    const houses = canvas.integer(5, 6);
    const colours = ['#7a3b2e', '#3f3a36', '#a5693f', '#5d6b5f', '#8a4a3a', '#c8b49a', '#2f3d4a'];
    let row = '';
    const houseWidth = w / houses;
    for (let index = 0; index < houses; index++) {
      const x0 = index * houseWidth;
      const x1 = x0 + houseWidth;
      const colour = canvas.pick(colours);
      const eave = h * canvas.between(0.22, 0.34);
      const peak = eave - h * canvas.between(0.1, 0.16);
      const mid = (x0 + x1) / 2;
      const gable = canvas.integer(0, 2);
      const inset = houseWidth * 0.12;
      const outline: Point[] =
        gable === 0
          ? [
              [x0, eave],
              [mid, peak],
              [x1, eave],
            ]
          : gable === 1
            ? [
                [x0, eave],
                [x0 + inset, eave],
                [x0 + inset, eave - (eave - peak) * 0.33],
                [x0 + inset * 2, eave - (eave - peak) * 0.33],
                [x0 + inset * 2, eave - (eave - peak) * 0.66],
                [x0 + inset * 3, eave - (eave - peak) * 0.66],
                [x0 + inset * 3, peak],
                [x1 - inset * 3, peak],
                [x1 - inset * 3, eave - (eave - peak) * 0.66],
                [x1 - inset * 2, eave - (eave - peak) * 0.66],
                [x1 - inset * 2, eave - (eave - peak) * 0.33],
                [x1 - inset, eave - (eave - peak) * 0.33],
                [x1 - inset, eave],
                [x1, eave],
              ]
            : [
                [x0, eave],
                [x0 + inset * 1.5, eave - (eave - peak) * 0.45],
                [x0 + inset * 2.6, peak],
                [x1 - inset * 2.6, peak],
                [x1 - inset * 1.5, eave - (eave - peak) * 0.45],
                [x1, eave],
              ];
      const fill = canvas.linear(
        [
          [0, shade(colour, 0.1)],
          [1, shade(colour, -0.12)],
        ],
        0,
        0,
        1,
        0,
      );
      row += polygon([...outline, [x1, waterline], [x0, waterline]], fill);
      row += line([x1, eave], [x1, waterline], '#000000', 3 * unit, 'opacity="0.35"');
      // Hoist beam and a small attic window in the gable.
      row += rect(mid - 8 * unit, peak + 8 * unit, 16 * unit, 22 * unit, '#2a3340');
      row += rect(mid - 2 * unit, peak - 4 * unit, 4 * unit, 14 * unit, '#3a2a20');
      const storeys = 3;
      const storeyHeight = (waterline - h * 0.08 - eave) / storeys;
      const style: WindowStyle = { frame: '#f3efe6', sill: '#f3efe6', panes: [2, 3], lit: false };
      for (let storey = 0; storey < storeys; storey++) {
        const y = eave + storey * storeyHeight + storeyHeight * 0.14;
        const windowWidth = houseWidth * 0.26;
        const windowHeight = storeyHeight * 0.66;
        for (const fraction of [0.14, 0.6]) {
          if (storey === storeys - 1 && fraction === 0.14) continue;
          row += frontalWindow(canvas, x0 + houseWidth * fraction, y, windowWidth, windowHeight, {
            ...style,
            lit: canvas.chance(0.18),
          });
        }
      }
      // Door up a short stoop.
      const doorTop = waterline - h * 0.08 - storeyHeight * 0.82;
      row += rect(x0 + houseWidth * 0.12, doorTop, houseWidth * 0.24, storeyHeight * 0.82, shade(colour, -0.55));
      row += rect(
        x0 + houseWidth * 0.14,
        doorTop + 4 * unit,
        houseWidth * 0.2,
        storeyHeight * 0.22,
        '#c9d6df',
        'opacity="0.6"',
      );
    }
    let out = sky(canvas, waterline, canvas.chance(0.4));
    out += `<g id="row">${row}</g>`;
    // Quay wall, then the canal reflecting the row (mirrored, blurred, darkened).
    out += rect(
      0,
      waterline - h * 0.08,
      w,
      h * 0.08,
      canvas.linear([
        [0, '#8d857a'],
        [1, '#5f5a52'],
      ]),
    );
    out += rect(0, waterline - h * 0.08, w, 4 * unit, '#b0a797');
    out += rect(0, waterline, w, h - waterline, '#2c3c47');
    out += `<g transform="translate(0 ${num(waterline * 2)}) scale(1 -1)" opacity="0.55" filter="${canvas.blur(2.5)}"><use href="#row"/></g>`;
    out += rect(
      0,
      waterline,
      w,
      h - waterline,
      canvas.linear([
        [0, '#1d2a33', 0.2],
        [1, '#1d2a33', 0.75],
      ]),
    );
    for (let ripple = 0; ripple < 30; ripple++) {
      const y = waterline + canvas.between(0.05, 1) * (h - waterline);
      const x = canvas.between(0, w);
      out += line([x, y], [x + canvas.between(20, 70) * unit, y], '#d7e3ea', 1.2 * unit, 'opacity="0.35"');
    }
    return out;
  },
};
