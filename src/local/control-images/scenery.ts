/**
 * Scenery the scenes share: sky, trees and frontal windows for exteriors, and the one-point perspective, room shell and
 * floor boards of the interiors and the street.
 */
import { type Canvas, ellipse, line, type Point, polygon, rect, shade } from './svg.js';

export function sky(canvas: Canvas, horizon: number, dusk: boolean): string {
  const { w } = canvas;
  const fill = dusk
    ? canvas.linear([
        [0, '#5b6f9e'],
        [0.6, '#e9b189'],
        [1, '#f6dcb8'],
      ])
    : canvas.linear([
        [0, '#7fa7d6'],
        [0.7, '#c6dcef'],
        [1, '#eef4f8'],
      ]);
  const cloud = canvas.blur(9);
  let clouds = '';
  for (let index = 0; index < 4; index++) {
    const cx = canvas.between(0, w);
    const cy = canvas.between(0.1, 0.6) * horizon;
    const rx = canvas.between(60, 140) * canvas.unit;
    clouds += ellipse(cx, cy, rx, rx * 0.22, '#ffffff', `opacity="0.55" filter="${cloud}"`);
    clouds += ellipse(cx + rx * 0.35, cy - rx * 0.08, rx * 0.5, rx * 0.2, '#ffffff', `opacity="0.5" filter="${cloud}"`);
  }
  return rect(0, 0, w, horizon, fill) + clouds;
}

export function tree(canvas: Canvas, x: number, ground: number, size: number): string {
  const trunkWidth = size * 0.12;
  const trunk = rect(x - trunkWidth / 2, ground - size * 1.1, trunkWidth, size * 1.1, '#5a4332');
  const leaves = canvas.radial(
    [
      [0, '#8fbf6a'],
      [0.6, '#4d7f3b'],
      [1, '#2b4f25'],
    ],
    0.35,
    0.3,
    0.75,
  );
  const shadow = canvas.blur(6);
  let crown = ellipse(
    x + size * 0.08,
    ground - size * 1.15,
    size * 0.7,
    size * 0.55,
    '#1d3318',
    `opacity="0.45" filter="${shadow}"`,
  );
  for (let index = 0; index < 5; index++) {
    const dx = canvas.between(-0.45, 0.45) * size;
    const dy = canvas.between(-0.35, 0.25) * size;
    const radius = canvas.between(0.32, 0.5) * size;
    crown += ellipse(x + dx, ground - size * 1.25 + dy, radius, radius * 0.92, leaves);
  }
  const groundShadow = ellipse(
    x + size * 0.15,
    ground,
    size * 0.7,
    size * 0.1,
    '#000000',
    `opacity="0.25" filter="${shadow}"`,
  );
  return groundShadow + trunk + crown;
}

export interface WindowStyle {
  readonly frame: string;
  readonly sill: string;
  /** Panes across and down. */
  readonly panes: readonly [number, number];
  readonly lit: boolean;
}

/** A frontal window: reveal shadow, glass reflecting the sky, glazing bars, a sill with its shadow below. */
export function frontalWindow(
  canvas: Canvas,
  x: number,
  y: number,
  width: number,
  height: number,
  style: WindowStyle,
): string {
  const { unit } = canvas;
  const glass = style.lit
    ? canvas.linear(
        [
          [0, '#ffe9b0'],
          [1, '#e9a85a'],
        ],
        0,
        0,
        1,
        1,
      )
    : canvas.linear(
        [
          [0, '#c9dced'],
          [0.45, '#6d86a0'],
          [1, '#24303f'],
        ],
        0,
        0,
        1,
        1,
      );
  const frameWidth = Math.max(1.5, 3 * unit);
  let out = rect(x - 2 * unit, y - 2 * unit, width + 4 * unit, height + 4 * unit, '#000000', 'opacity="0.28"');
  out += rect(x, y, width, height, style.frame);
  out += rect(x + frameWidth, y + frameWidth, width - 2 * frameWidth, height - 2 * frameWidth, glass);
  const [across, down] = style.panes;
  for (let column = 1; column < across; column++) {
    const barX = x + (width * column) / across;
    out += line([barX, y], [barX, y + height], style.frame, frameWidth * 0.8);
  }
  for (let row = 1; row < down; row++) {
    const barY = y + (height * row) / down;
    out += line([x, barY], [x + width, barY], style.frame, frameWidth * 0.8);
  }
  // Inner reveal: the top and left of the opening are in shadow, which reads as wall thickness.
  out += rect(x + frameWidth, y + frameWidth, width - 2 * frameWidth, 4 * unit, '#000000', 'opacity="0.25"');
  out += rect(x - 4 * unit, y + height, width + 8 * unit, 5 * unit, style.sill);
  out += rect(x - 4 * unit, y + height + 5 * unit, width + 8 * unit, 5 * unit, '#000000', 'opacity="0.22"');
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// One-point perspective for interiors and the street: the picture plane is the image frame at depth 1; a point at
// fractions (u across, v down) of that frame and depth z ≥ 1 lands at V + (frame point − V) / z.

export class Perspective {
  constructor(
    private readonly canvas: Canvas,
    readonly vanishX: number,
    readonly vanishY: number,
  ) {}

  at(u: number, v: number, z: number): Point {
    const { w, h } = this.canvas;
    return [this.vanishX + (u * w - this.vanishX) / z, this.vanishY + (v * h - this.vanishY) / z];
  }

  /** A face of constant depth (parallel to the picture plane). */
  frontFace(u0: number, v0: number, u1: number, v1: number, z: number): Point[] {
    return [this.at(u0, v0, z), this.at(u1, v0, z), this.at(u1, v1, z), this.at(u0, v1, z)];
  }

  /** A face of constant u (a side wall), from depth z0 to z1. */
  sideFace(u: number, v0: number, v1: number, z0: number, z1: number): Point[] {
    return [this.at(u, v0, z0), this.at(u, v0, z1), this.at(u, v1, z1), this.at(u, v1, z0)];
  }

  /** A face of constant v (floor, ceiling, a table top). */
  levelFace(v: number, u0: number, u1: number, z0: number, z1: number): Point[] {
    return [this.at(u0, v, z0), this.at(u1, v, z0), this.at(u1, v, z1), this.at(u0, v, z1)];
  }

  /** A solid box; draws only the faces that face the viewer, lit from the left. */
  box(
    u0: number,
    u1: number,
    vTop: number,
    vBottom: number,
    z0: number,
    z1: number,
    colour: string,
    options: { readonly lightFromLeft?: boolean } = {},
  ): string {
    const { w, h } = this.canvas;
    const lightFromLeft = options.lightFromLeft ?? true;
    let out = '';
    if (this.vanishY / h < vTop) out += polygon(this.levelFace(vTop, u0, u1, z0, z1), shade(colour, 0.18));
    if (this.vanishY / h > vBottom) out += polygon(this.levelFace(vBottom, u0, u1, z0, z1), shade(colour, -0.35));
    if (this.vanishX / w < u0) {
      out += polygon(this.sideFace(u0, vTop, vBottom, z0, z1), shade(colour, lightFromLeft ? 0.05 : -0.3));
    }
    if (this.vanishX / w > u1) {
      out += polygon(this.sideFace(u1, vTop, vBottom, z0, z1), shade(colour, lightFromLeft ? -0.3 : 0.05));
    }
    out += polygon(this.frontFace(u0, vTop, u1, vBottom, z0), shade(colour, -0.08));
    return out;
  }
}

export interface RoomColours {
  readonly wall: string;
  readonly floor: string;
  readonly ceiling: string;
}

/** The shell of a one-point room: ceiling, floor, side walls, back wall, with soft shading in the corners. */
export function roomShell(canvas: Canvas, view: Perspective, depth: number, colours: RoomColours): string {
  const { unit } = canvas;
  const ceiling = canvas.linear([
    [0, shade(colours.ceiling, -0.12)],
    [1, colours.ceiling],
  ]);
  const floor = canvas.linear([
    [0, shade(colours.floor, -0.25)],
    [1, shade(colours.floor, 0.08)],
  ]);
  const leftWall = canvas.linear(
    [
      [0, shade(colours.wall, 0.06)],
      [1, shade(colours.wall, -0.1)],
    ],
    0,
    0,
    1,
    0,
  );
  const rightWall = canvas.linear(
    [
      [0, shade(colours.wall, -0.12)],
      [1, shade(colours.wall, -0.28)],
    ],
    0,
    0,
    1,
    0,
  );
  let out = polygon(view.levelFace(0, 0, 1, 1, depth), ceiling);
  out += polygon(view.levelFace(1, 0, 1, 1, depth), floor);
  out += polygon(view.sideFace(0, 0, 1, 1, depth), leftWall);
  out += polygon(view.sideFace(1, 0, 1, 1, depth), rightWall);
  out += polygon(view.frontFace(0, 0, 1, 1, depth), shade(colours.wall, -0.04));
  // Ambient occlusion along the room's edges: a dark blurred line where two surfaces meet.
  const soft = canvas.blur(5);
  const corners: ReadonlyArray<readonly [Point, Point]> = [
    [view.at(0, 0, depth), view.at(1, 0, depth)],
    [view.at(1, 0, depth), view.at(1, 1, depth)],
    [view.at(1, 1, depth), view.at(0, 1, depth)],
    [view.at(0, 1, depth), view.at(0, 0, depth)],
    [view.at(0, 1, 1), view.at(0, 1, depth)],
    [view.at(1, 1, 1), view.at(1, 1, depth)],
    [view.at(0, 0, 1), view.at(0, 0, depth)],
    [view.at(1, 0, 1), view.at(1, 0, depth)],
  ];
  for (const [from, to] of corners) out += line(from, to, '#000000', 10 * unit, `opacity="0.22" filter="${soft}"`);
  for (const [from, to] of corners) out += line(from, to, '#000000', 1.2 * unit, 'opacity="0.35"');
  return out;
}

export function floorBoards(canvas: Canvas, view: Perspective, depth: number, boards: number, colour: string): string {
  let out = '';
  for (let board = 1; board < boards; board++) {
    const u = board / boards;
    out += line(view.at(u, 1, 1), view.at(u, 1, depth), colour, 1.2 * canvas.unit, 'opacity="0.55"');
    // Staggered butt joints, so the boards read as boards and not as stripes.
    for (let joint = 0; joint < 3; joint++) {
      const z = 1 + ((joint + (board % 3) / 3) / 3) * (depth - 1);
      out += line(view.at(u - 1 / boards, 1, z), view.at(u, 1, z), colour, 1 * canvas.unit, 'opacity="0.45"');
    }
  }
  return out;
}
