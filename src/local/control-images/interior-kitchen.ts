/** The kitchen in one-point perspective. */

import { Perspective, type RoomColours, roomShell } from './scenery.js';
import { ellipse, line, num, polygon, rect, type Scene, shade } from './svg.js';

export const kitchen: Scene = {
  kind: 'interior-kitchen',
  description:
    'Kitchen in one-point perspective: base and wall cabinets, a window over the sink, an island and pendant lights',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const view = new Perspective(canvas, w * canvas.between(0.46, 0.54), h * 0.47);
    const depth = 2.4;
    const colours: RoomColours = {
      wall: canvas.pick(['#efece6', '#e4e8e6', '#f1ebe2']),
      floor: canvas.pick(['#bfb4a5', '#9c9184', '#c8bba8']),
      ceiling: '#f6f4f0',
    };
    const cabinet = canvas.pick(['#3e5566', '#e8e4dc', '#5d6b58', '#2f3338', '#c9b79c']);
    const counter = canvas.pick(['#f2f0ec', '#2b2b2b', '#d8d3ca']);
    let out = roomShell(canvas, view, depth, colours);
    // Floor tiles.
    const grout = shade(colours.floor, -0.35);
    for (let along = 1; along < 8; along++) {
      out += line(view.at(along / 8, 1, 1), view.at(along / 8, 1, depth), grout, 1.2 * unit, 'opacity="0.6"');
    }
    for (let across = 1; across < 8; across++) {
      const z = 1 + (across / 8) ** 1.2 * (depth - 1);
      out += line(view.at(0, 1, z), view.at(1, 1, z), grout, 1.2 * unit, 'opacity="0.6"');
    }
    // Window over the sink in the back wall.
    out += polygon(view.frontFace(0.36, 0.14, 0.64, 0.52, depth), shade(colours.wall, -0.3));
    out += polygon(
      view.frontFace(0.375, 0.16, 0.625, 0.5, depth),
      canvas.linear([
        [0, '#d9ebf6'],
        [0.7, '#a8c8a0'],
        [1, '#7fa36e'],
      ]),
    );
    out += line(view.at(0.5, 0.16, depth), view.at(0.5, 0.5, depth), '#f5f3ee', 4 * unit);
    // Splashback tiles between worktop and wall cabinets.
    out += polygon(view.frontFace(0, 0.44, 1, 0.66, depth), shade(colours.wall, -0.06));
    for (let course = 1; course < 6; course++) {
      const v = 0.44 + (course / 6) * 0.22;
      out += line(view.at(0, v, depth), view.at(1, v, depth), shade(colours.wall, -0.2), 0.8 * unit);
    }
    // Base run along the back wall, with a worktop; wall cabinets either side of the window.
    const baseDepth = 0.32;
    out += view.box(0, 1, 0.7, 1, depth - baseDepth, depth, cabinet);
    out += view.box(0, 1, 0.665, 0.7, depth - baseDepth - 0.04, depth, counter);
    for (let door = 0; door < 8; door++) {
      const u0 = door / 8 + 0.008;
      const u1 = (door + 1) / 8 - 0.008;
      out += polygon(view.frontFace(u0, 0.72, u1, 0.98, depth - baseDepth), shade(cabinet, 0.06));
      const handle = view.at((u0 + u1) / 2, 0.74, depth - baseDepth);
      out += rect(handle[0] - 8 * unit, handle[1], 16 * unit, 2.5 * unit, '#b8b3aa');
    }
    for (const [u0, u1] of [
      [0, 0.34],
      [0.66, 1],
    ] as const) {
      out += view.box(u0, u1, 0.1, 0.38, depth - 0.2, depth, cabinet);
      for (let door = 0; door < 3; door++) {
        const a = u0 + ((u1 - u0) * door) / 3 + 0.006;
        const b = u0 + ((u1 - u0) * (door + 1)) / 3 - 0.006;
        out += polygon(view.frontFace(a, 0.12, b, 0.36, depth - 0.2), shade(cabinet, 0.06));
      }
    }
    // A tall fridge unit on the right wall.
    out += view.box(0.8, 1, 0.05, 1, 1.25, 1.7, shade(cabinet, -0.05));
    // The island, its shadow first.
    out += polygon(view.levelFace(1, 0.28, 0.72, 1.45, 1.95), '#000000', `opacity="0.35" filter="${canvas.blur(7)}"`);
    out += view.box(0.3, 0.7, 0.72, 1, 1.5, 1.9, cabinet);
    out += view.box(0.27, 0.73, 0.69, 0.72, 1.42, 1.92, counter);
    for (const u of [0.36, 0.5, 0.64]) {
      out += view.box(u - 0.02, u + 0.02, 0.78, 1, 1.3, 1.33, '#2b2a28');
      out += view.box(u - 0.045, u + 0.045, 0.77, 0.79, 1.26, 1.36, canvas.pick(['#8c6a4c', '#2b2a28', '#b6a58c']));
    }
    // Pendant lights over the island.
    for (const u of [0.38, 0.5, 0.62]) {
      const top = view.at(u, 0, 1.7);
      const bottom = view.at(u, 0.38, 1.7);
      out += line(top, bottom, '#222222', 1.3 * unit);
      out += ellipse(
        bottom[0],
        bottom[1] + 30 * unit,
        50 * unit,
        40 * unit,
        canvas.radial([
          [0, '#fff2cc', 0.6],
          [1, '#fff2cc', 0],
        ]),
      );
      out += `<path d="M ${num(bottom[0] - 14 * unit)} ${num(bottom[1] + 16 * unit)} L ${num(bottom[0] - 5 * unit)} ${num(bottom[1])} L ${num(bottom[0] + 5 * unit)} ${num(bottom[1])} L ${num(bottom[0] + 14 * unit)} ${num(bottom[1] + 16 * unit)} Z" fill="#1f1f1f"/>`;
      out += ellipse(bottom[0], bottom[1] + 16 * unit, 14 * unit, 3 * unit, '#fff3d4');
    }
    return out;
  },
};
