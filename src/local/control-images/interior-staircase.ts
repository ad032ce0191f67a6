/** The entrance hall with a staircase, in one-point perspective. */

import { Perspective, type RoomColours, roomShell } from './scenery.js';
import { ellipse, line, polygon, type Scene, shade } from './svg.js';

export const staircaseHall: Scene = {
  kind: 'interior-staircase',
  description:
    'Entrance hall with a straight staircase rising along the right wall, handrail, a panelled door and a tiled floor',
  draw(canvas) {
    const { w, h, unit } = canvas;
    const view = new Perspective(canvas, w * canvas.between(0.38, 0.46), h * 0.5);
    const depth = 3;
    const colours: RoomColours = {
      wall: canvas.pick(['#e6e0d4', '#dbe0e4', '#efe9df']),
      floor: canvas.pick(['#cfc7b8', '#bdb6ab']),
      ceiling: '#f4f2ee',
    };
    let out = roomShell(canvas, view, depth, colours);
    // Chequered floor tiles: lines across at regular depths and along at regular widths.
    const tile = shade(colours.floor, -0.4);
    for (let along = 1; along < 10; along++) {
      out += line(view.at(along / 10, 1, 1), view.at(along / 10, 1, depth), tile, 1.2 * unit, 'opacity="0.6"');
    }
    for (let across = 1; across < 12; across++) {
      const z = 1 + (across / 12) * (depth - 1);
      out += line(view.at(0, 1, z), view.at(1, 1, z), tile, 1.2 * unit, 'opacity="0.6"');
    }
    // Panelled door on the back wall.
    out += polygon(view.frontFace(0.14, 0.3, 0.4, 1, depth), shade(colours.wall, -0.35));
    const doorColour = canvas.pick(['#3d4f5c', '#5b3b2e', '#2f4a3c']);
    out += polygon(view.frontFace(0.16, 0.33, 0.38, 1, depth), doorColour);
    for (const [v0, v1] of [
      [0.37, 0.6],
      [0.66, 0.95],
    ] as const) {
      out += polygon(view.frontFace(0.19, v0, 0.26, v1, depth), shade(doorColour, -0.25));
      out += polygon(view.frontFace(0.28, v0, 0.35, v1, depth), shade(doorColour, -0.25));
    }
    const knob = view.at(0.355, 0.68, depth);
    out += ellipse(knob[0], knob[1], 3 * unit, 3 * unit, '#d8b86a');
    // Picture frames climbing the left wall.
    for (let index = 0; index < 3; index++) {
      const z0 = 1.2 + index * 0.45;
      out += polygon(view.sideFace(0, 0.3 - index * 0.02, 0.52 - index * 0.02, z0, z0 + 0.3), '#2e2a26');
      out += polygon(
        view.sideFace(0, 0.32 - index * 0.02, 0.5 - index * 0.02, z0 + 0.02, z0 + 0.28),
        canvas.pick(['#a9b9a0', '#c8a98a', '#8fa4b8']),
      );
    }
    // The staircase: blocks from the floor up, drawn from the far end so nearer steps paint over farther ones.
    const steps = 9;
    const rise = 0.058;
    const run = 0.17;
    const start = 1.2;
    const stairColour = canvas.pick(['#8c6a4c', '#a9a197', '#6d5444']);
    const stringer = shade(colours.wall, -0.15);
    let stairs = '';
    for (let step = steps - 1; step >= 0; step--) {
      const z0 = start + step * run;
      const top = 1 - (step + 1) * rise;
      stairs += polygon(view.sideFace(0.64, top, 1, z0, depth), stringer);
      stairs += polygon(view.levelFace(top, 0.64, 1, z0, z0 + run), shade(stairColour, 0.12));
      stairs += polygon(view.frontFace(0.64, top, 1, top + rise, z0), shade(colours.wall, 0.1));
      stairs += line(view.at(0.64, top, z0), view.at(1, top, z0), shade(stairColour, -0.3), 1.5 * unit);
    }
    out += stairs;
    // Handrail with balusters, and a newel post at the foot.
    const railLift = 0.2;
    const firstTop = 1 - rise;
    const lastTop = 1 - steps * rise;
    for (let step = 0; step < steps; step++) {
      const z = start + (step + 0.5) * run;
      const top = 1 - (step + 1) * rise;
      // The rail is a straight line in space, so its height is linear in depth between its two ends.
      const railV = firstTop - railLift + ((lastTop - firstTop) * (z - start - run / 2)) / ((steps - 1) * run);
      out += line(view.at(0.655, top, z), view.at(0.655, railV, z), '#f2efe9', 2.2 * unit);
    }
    out += line(
      view.at(0.655, firstTop - railLift, start + run / 2),
      view.at(0.655, lastTop - railLift, start + (steps - 0.5) * run),
      '#3b2a20',
      5 * unit,
    );
    out += view.box(0.63, 0.68, firstTop - railLift - 0.04, 1, start - 0.06, start, '#3b2a20');
    // Skylight glow on the ceiling.
    out += polygon(view.levelFace(0, 0.3, 0.6, 1.6, 2.3), '#ffffff', `opacity="0.8" filter="${canvas.blur(3)}"`);
    out += polygon(
      view.levelFace(0, 0.34, 0.56, 1.7, 2.2),
      canvas.linear([
        [0, '#cfe3f2'],
        [1, '#9fbfd8'],
      ]),
    );
    return out;
  },
};
