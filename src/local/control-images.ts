/**
 * Synthetic control images for the demo and the tests: architecture and real-estate scenes (facades, a street, a
 * gabled house, townhouses, interiors in one-point perspective) drawn as SVG and rasterised with sharp. depthq makes
 * its own images so that neither the repository nor a demo ever ships someone else's photos.
 *
 * Every scene is a function of the image size and a seeded PRNG, so the same options always give byte-identical images
 * (no fonts, no clock, no randomness from outside). Asking for more images than there are scene kinds cycles through
 * the kinds again with another seed: other colours, window counts and furniture.
 */
import sharp from 'sharp';
import { seededRandom } from '../core/random.js';

export interface ControlImage {
  /** Unique and stable, e.g. `facade-brick-01`; safe as a file name or an S3 key segment. */
  readonly name: string;
  readonly description: string;
  readonly bytes: Buffer;
  readonly contentType: 'image/png' | 'image/jpeg';
}

export interface ControlImageOptions {
  /** @defaultValue 8 (one of each scene kind) */
  readonly count?: number;
  /** @defaultValue 768 */
  readonly width?: number;
  /** @defaultValue 512 */
  readonly height?: number;
  /** @defaultValue 'png' */
  readonly format?: 'png' | 'jpeg';
}

export const MAX_CONTROL_IMAGE_COUNT = 1000;
export const MIN_CONTROL_IMAGE_SIDE = 64;
export const MAX_CONTROL_IMAGE_SIDE = 4096;

export async function makeControlImages(options: ControlImageOptions = {}): Promise<ControlImage[]> {
  const count = options.count ?? 8;
  const width = options.width ?? 768;
  const height = options.height ?? 512;
  const format = options.format ?? 'png';
  if (!Number.isInteger(count) || count < 0 || count > MAX_CONTROL_IMAGE_COUNT) {
    throw new RangeError(`count must be an integer from 0 to ${MAX_CONTROL_IMAGE_COUNT}, got ${count}`);
  }
  for (const [option, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(value) || value < MIN_CONTROL_IMAGE_SIDE || value > MAX_CONTROL_IMAGE_SIDE) {
      throw new RangeError(
        `${option} must be an integer from ${MIN_CONTROL_IMAGE_SIDE} to ${MAX_CONTROL_IMAGE_SIDE}, got ${value}`,
      );
    }
  }
  if (format !== 'png' && format !== 'jpeg') {
    throw new RangeError(`format must be png or jpeg, got ${String(format)}`);
  }

  const images: ControlImage[] = [];
  // One at a time: rasterising is CPU-bound, and this bounds memory to one image whatever `count` is.
  for (let index = 0; index < count; index++) {
    const scene = SCENES[index % SCENES.length] ?? brickFacade;
    const variant = Math.floor(index / SCENES.length) + 1;
    const canvas = new Canvas(width, height, sceneSeed(scene.kind, variant));
    const svg = canvas.document(scene.draw(canvas));
    const raster = sharp(Buffer.from(svg, 'utf8')).removeAlpha();
    const bytes =
      format === 'png'
        ? await raster.png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer()
        : await raster.jpeg({ quality: 92, chromaSubsampling: '4:4:4', mozjpeg: false }).toBuffer();
    images.push({
      name: `${scene.kind}-${String(variant).padStart(2, '0')}`,
      description: scene.description,
      bytes,
      contentType: format === 'png' ? 'image/png' : 'image/jpeg',
    });
  }
  return images;
}

interface Scene {
  readonly kind: string;
  readonly description: string;
  readonly draw: (canvas: Canvas) => string;
}

function sceneSeed(kind: string, variant: number): number {
  let hash = 2166136261;
  for (const character of `${kind}#${variant}`) {
    hash = Math.imul(hash ^ (character.codePointAt(0) ?? 0), 16777619) >>> 0;
  }
  return hash;
}

// ---------------------------------------------------------------------------------------------------------------------
// Drawing primitives. Coordinates are pixels; numbers are written with one decimal so the SVG text, and therefore the
// raster, never depends on floating-point printing quirks.

type Point = readonly [number, number];

function num(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

function points(corners: readonly Point[]): string {
  return corners.map(([x, y]) => `${num(x)},${num(y)}`).join(' ');
}

function polygon(corners: readonly Point[], fill: string, extra = ''): string {
  return `<polygon points="${points(corners)}" fill="${fill}" ${extra}/>`;
}

function rect(x: number, y: number, width: number, height: number, fill: string, extra = ''): string {
  return `<rect x="${num(x)}" y="${num(y)}" width="${num(width)}" height="${num(height)}" fill="${fill}" ${extra}/>`;
}

function line(from: Point, to: Point, stroke: string, width: number, extra = ''): string {
  return `<line x1="${num(from[0])}" y1="${num(from[1])}" x2="${num(to[0])}" y2="${num(to[1])}" stroke="${stroke}" stroke-width="${num(width)}" ${extra}/>`;
}

function ellipse(cx: number, cy: number, rx: number, ry: number, fill: string, extra = ''): string {
  return `<ellipse cx="${num(cx)}" cy="${num(cy)}" rx="${num(rx)}" ry="${num(ry)}" fill="${fill}" ${extra}/>`;
}

type GradientStop = readonly [offset: number, colour: string, opacity?: number];

function stopsOf(stops: readonly GradientStop[]): string {
  return stops
    .map(
      ([offset, colour, opacity]) => `<stop offset="${offset}" stop-color="${colour}" stop-opacity="${opacity ?? 1}"/>`,
    )
    .join('');
}

/** A gradient across the bounding box of what it fills, from (x1,y1) to (x2,y2) in 0..1. */
function linearGradient(id: string, stops: readonly GradientStop[], x1 = 0, y1 = 0, x2 = 0, y2 = 1): string {
  return `<linearGradient id="${id}" x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}">${stopsOf(stops)}</linearGradient>`;
}

function radialGradient(id: string, stops: readonly GradientStop[], cx = 0.5, cy = 0.5, r = 0.5): string {
  return `<radialGradient id="${id}" cx="${cx}" cy="${cy}" r="${r}">${stopsOf(stops)}</radialGradient>`;
}

function lerp(a: number, b: number, t: number): number {
  return a + (b - a) * t;
}

function lerpPoint(a: Point, b: Point, t: number): Point {
  return [lerp(a[0], b[0], t), lerp(a[1], b[1], t)];
}

/** A point inside a quadrilateral (top-left, top-right, bottom-right, bottom-left) by its fractions across and down. */
function inQuad(quad: readonly [Point, Point, Point, Point], across: number, down: number): Point {
  return lerpPoint(lerpPoint(quad[0], quad[1], across), lerpPoint(quad[3], quad[2], across), down);
}

function subQuad(
  quad: readonly [Point, Point, Point, Point],
  left: number,
  top: number,
  right: number,
  bottom: number,
): [Point, Point, Point, Point] {
  return [inQuad(quad, left, top), inQuad(quad, right, top), inQuad(quad, right, bottom), inQuad(quad, left, bottom)];
}

/** Lightens (amount > 0) or darkens (amount < 0) a #rrggbb colour. */
function shade(hex: string, amount: number): string {
  const value = Number.parseInt(hex.slice(1), 16);
  const channels = [(value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff].map((channel) =>
    Math.round(amount >= 0 ? channel + (255 - channel) * amount : channel * (1 + amount)),
  );
  return `#${channels.map((channel) => channel.toString(16).padStart(2, '0')).join('')}`;
}

/** One image being drawn: its size, its PRNG, and the definitions (gradients, patterns, filters) its shapes use. */
class Canvas {
  readonly w: number;
  readonly h: number;
  /** Scale of strokes and small details: 1 at 512 px on the shorter side. */
  readonly unit: number;
  private readonly random: () => number;
  private readonly definitions: string[] = [];
  private nextId = 0;

  constructor(width: number, height: number, seed: number) {
    this.w = width;
    this.h = height;
    this.unit = Math.min(width, height) / 512;
    this.random = seededRandom(seed);
  }

  between(low: number, high: number): number {
    return low + (high - low) * this.random();
  }

  integer(low: number, high: number): number {
    return Math.min(high, low + Math.floor(this.random() * (high - low + 1)));
  }

  chance(probability: number): boolean {
    return this.random() < probability;
  }

  pick<T>(choices: readonly T[]): T {
    const choice = choices[Math.min(choices.length - 1, Math.floor(this.random() * choices.length))];
    if (choice === undefined) throw new RangeError('pick needs at least one choice');
    return choice;
  }

  /** Registers a definition built around a fresh id and returns `url(#id)` to fill or filter with. */
  define(build: (id: string) => string): string {
    const id = `d${this.nextId++}`;
    this.definitions.push(build(id));
    return `url(#${id})`;
  }

  linear(stops: readonly GradientStop[], x1 = 0, y1 = 0, x2 = 0, y2 = 1): string {
    return this.define((id) => linearGradient(id, stops, x1, y1, x2, y2));
  }

  radial(stops: readonly GradientStop[], cx = 0.5, cy = 0.5, r = 0.5): string {
    return this.define((id) => radialGradient(id, stops, cx, cy, r));
  }

  blur(deviation: number): string {
    return this.define(
      (id) =>
        `<filter id="${id}" x="-50%" y="-50%" width="200%" height="200%"><feGaussianBlur stdDeviation="${num(deviation * this.unit)}"/></filter>`,
    );
  }

  document(body: string): string {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${this.w}" height="${this.h}" viewBox="0 0 ${this.w} ${this.h}"><defs>${this.definitions.join('')}</defs>${body}</svg>`;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Shared scenery.

function sky(canvas: Canvas, horizon: number, dusk: boolean): string {
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

function tree(canvas: Canvas, x: number, ground: number, size: number): string {
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

interface WindowStyle {
  readonly frame: string;
  readonly sill: string;
  /** Panes across and down. */
  readonly panes: readonly [number, number];
  readonly lit: boolean;
}

/** A frontal window: reveal shadow, glass reflecting the sky, glazing bars, a sill with its shadow below. */
function frontalWindow(
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

class Perspective {
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

interface RoomColours {
  readonly wall: string;
  readonly floor: string;
  readonly ceiling: string;
}

/** The shell of a one-point room: ceiling, floor, side walls, back wall, with soft shading in the corners. */
function roomShell(canvas: Canvas, view: Perspective, depth: number, colours: RoomColours): string {
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

function floorBoards(canvas: Canvas, view: Perspective, depth: number, boards: number, colour: string): string {
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

// ---------------------------------------------------------------------------------------------------------------------
// The scenes.

const brickFacade: Scene = {
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

const modernFacade: Scene = {
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

const streetPerspective: Scene = {
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

const livingRoom: Scene = {
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

const staircaseHall: Scene = {
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

const gabledHouse: Scene = {
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

const townhouses: Scene = {
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

const kitchen: Scene = {
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

/** The order is the demo's order: exteriors and interiors alternate so a short run already shows both. */
const SCENES: readonly Scene[] = [
  brickFacade,
  livingRoom,
  streetPerspective,
  kitchen,
  gabledHouse,
  staircaseHall,
  modernFacade,
  townhouses,
];
