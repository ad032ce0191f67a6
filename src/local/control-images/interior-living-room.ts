/** The living room in one-point perspective. */

import { floorBoards, Perspective, type RoomColours, roomShell } from './scenery.js';
import { ellipse, inQuad, line, num, type Point, polygon, type Scene, shade } from './svg.js';

export const livingRoom: Scene = {
  kind: 'interior-living-room',
  description:
    'Living room in one-point perspective: a tall window on the left wall, sofa, coffee table, rug and a pendant lamp',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const view = new Perspective(canvas, w * canvas.between(0.46, 0.56), h * 0.48);
    const depth = 2.6;
    const colours: RoomColours = {
      wall: canvas.pick(['#e9e2d6', '#dfe3e1', '#eee6dc', '#e3d9cb']),
      floor: canvas.pick(['#b8875a', '#a77b53', '#c9a27a']),
      ceiling: '#f5f3ef',
    };
    let out = roomShell(canvas, view, depth, colours);
    out += floorBoards(canvas, view, depth, 9, shade(colours.floor, -0.45));
    // Window on the left wall, and the daylight it throws across the floor.
    const windowFace = view.sideFace(0, 0.16, 0.72, 1.35, 2.15);
    out += polygon(windowFace, shade(colours.wall, -0.3));
    const inner = view.sideFace(0, 0.18, 0.7, 1.38, 2.12);
    out += polygon(
      inner,
      canvas.linear(
        [
          [0, '#dcecf7'],
          [1, '#a9c4d8'],
        ],
        0,
        0,
        1,
        1,
      ),
    );
    const innerQuad: [Point, Point, Point, Point] = [
      inner[0] ?? [0, 0],
      inner[1] ?? [0, 0],
      inner[2] ?? [0, 0],
      inner[3] ?? [0, 0],
    ];
    out += line(inQuad(innerQuad, 0.5, 0), inQuad(innerQuad, 0.5, 1), '#f7f5f0', 5 * unit);
    out += line(inQuad(innerQuad, 0, 0.35), inQuad(innerQuad, 1, 0.35), '#f7f5f0', 4 * unit);
    out += polygon(
      [view.at(0, 1, 1.35), view.at(0, 1, 2.15), view.at(0.55, 1, 2.35), view.at(0.5, 1, 1.45)],
      '#fff8e6',
      `opacity="0.35" filter="${canvas.blur(6)}"`,
    );
    // A framed picture on the back wall, a sideboard under it.
    const frame = view.frontFace(0.55, 0.3, 0.8, 0.5, depth);
    out += polygon(frame, '#3a332c');
    out += polygon(
      view.frontFace(0.565, 0.32, 0.785, 0.48, depth),
      canvas.linear(
        [
          [0, '#c7b38c'],
          [1, '#5f7d86'],
        ],
        0,
        0,
        1,
        1,
      ),
    );
    // Rug, sofa against the back wall, coffee table in front.
    const rugColour = canvas.pick(['#8c4b3c', '#41566b', '#6b6a45']);
    out += polygon(view.levelFace(1, 0.2, 0.8, 1.45, 2.3), rugColour, 'opacity="0.9"');
    out += polygon(view.levelFace(1, 0.23, 0.77, 1.5, 2.25), shade(rugColour, 0.2), 'opacity="0.5"');
    const sofa = canvas.pick(['#5f6f64', '#7d7f86', '#9b8468', '#3f4d63']);
    out += polygon(view.levelFace(1, 0.15, 0.85, 2.15, depth), '#000000', `opacity="0.35" filter="${canvas.blur(6)}"`);
    out += view.box(0.15, 0.85, 0.55, 0.9, depth - 0.16, depth, sofa);
    out += view.box(0.15, 0.85, 0.72, 1, depth - 0.45, depth - 0.16, sofa);
    out += view.box(0.12, 0.2, 0.66, 1, depth - 0.45, depth, shade(sofa, -0.05));
    out += view.box(0.8, 0.88, 0.66, 1, depth - 0.45, depth, shade(sofa, -0.05));
    for (const cushion of [0.25, 0.46, 0.66]) {
      out += view.box(cushion, cushion + 0.16, 0.6, 0.72, depth - 0.22, depth - 0.16, shade(sofa, 0.25));
    }
    out += polygon(view.levelFace(1, 0.32, 0.7, 1.55, 1.9), '#000000', `opacity="0.3" filter="${canvas.blur(5)}"`);
    const wood = canvas.pick(['#6e4a30', '#8b6443', '#4b3a2c']);
    for (const [u, z] of [
      [0.34, 1.6],
      [0.64, 1.6],
      [0.34, 1.85],
      [0.64, 1.85],
    ] as const) {
      out += view.box(u, u + 0.02, 0.84, 1, z, z + 0.04, shade(wood, -0.2));
    }
    out += view.box(0.32, 0.68, 0.81, 0.84, 1.57, 1.9, wood);
    // Pendant lamp.
    const cordTop = view.at(0.5, 0, 1.75);
    const shadeTop = view.at(0.5, 0.3, 1.75);
    out += line(cordTop, shadeTop, '#2a2a2a', 1.5 * unit);
    out += ellipse(
      shadeTop[0],
      shadeTop[1] + 40 * unit,
      120 * unit,
      60 * unit,
      canvas.radial([
        [0, '#fff4d6', 0.55],
        [1, '#fff4d6', 0],
      ]),
    );
    out += `<path d="M ${num(shadeTop[0] - 26 * unit)} ${num(shadeTop[1] + 24 * unit)} Q ${num(shadeTop[0])} ${num(shadeTop[1] - 14 * unit)} ${num(shadeTop[0] + 26 * unit)} ${num(shadeTop[1] + 24 * unit)} Z" fill="#2d2b28"/>`;
    out += ellipse(shadeTop[0], shadeTop[1] + 24 * unit, 26 * unit, 4 * unit, '#fff2cf');
    return out;
  },
};
