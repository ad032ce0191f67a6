/**
 * The drawing primitives of the synthetic control images: SVG shapes and gradients as strings, colour and point
 * arithmetic, and the Canvas one image is drawn on (its size, its seeded PRNG, its definitions). Coordinates are pixels;
 * numbers are written with one decimal so the SVG text, and therefore the raster, never depends on floating-point
 * printing quirks.
 */
import { seededRandom } from '../../core/random.js';

export type Point = readonly [number, number];

export function num(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

function points(corners: readonly Point[]): string {
  return corners.map(([x, y]) => `${num(x)},${num(y)}`).join(' ');
}

export function polygon(corners: readonly Point[], fill: string, extra = ''): string {
  return `<polygon points="${points(corners)}" fill="${fill}" ${extra}/>`;
}

export function rect(x: number, y: number, width: number, height: number, fill: string, extra = ''): string {
  return `<rect x="${num(x)}" y="${num(y)}" width="${num(width)}" height="${num(height)}" fill="${fill}" ${extra}/>`;
}

export function line(from: Point, to: Point, stroke: string, width: number, extra = ''): string {
  return `<line x1="${num(from[0])}" y1="${num(from[1])}" x2="${num(to[0])}" y2="${num(to[1])}" stroke="${stroke}" stroke-width="${num(width)}" ${extra}/>`;
}

export function ellipse(cx: number, cy: number, rx: number, ry: number, fill: string, extra = ''): string {
  return `<ellipse cx="${num(cx)}" cy="${num(cy)}" rx="${num(rx)}" ry="${num(ry)}" fill="${fill}" ${extra}/>`;
}

export type GradientStop = readonly [offset: number, colour: string, opacity?: number];

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

export function lerpPoint(a: Point, b: Point, t: number): Point {
  return [lerp(a[0], b[0], t), lerp(a[1], b[1], t)];
}

/** A point inside a quadrilateral (top-left, top-right, bottom-right, bottom-left) by its fractions across and down. */
export function inQuad(quad: readonly [Point, Point, Point, Point], across: number, down: number): Point {
  return lerpPoint(lerpPoint(quad[0], quad[1], across), lerpPoint(quad[3], quad[2], across), down);
}

export function subQuad(
  quad: readonly [Point, Point, Point, Point],
  left: number,
  top: number,
  right: number,
  bottom: number,
): [Point, Point, Point, Point] {
  return [inQuad(quad, left, top), inQuad(quad, right, top), inQuad(quad, right, bottom), inQuad(quad, left, bottom)];
}

/** Lightens (amount > 0) or darkens (amount < 0) a #rrggbb colour. */
export function shade(hex: string, amount: number): string {
  const value = Number.parseInt(hex.slice(1), 16);
  const channels = [(value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff].map((channel) =>
    Math.round(amount >= 0 ? channel + (255 - channel) * amount : channel * (1 + amount)),
  );
  return `#${channels.map((channel) => channel.toString(16).padStart(2, '0')).join('')}`;
}

/** One image being drawn: its size, its PRNG, and the definitions (gradients, patterns, filters) its shapes use. */
export class Canvas {
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

/** One kind of scene: its name in the image names, what it shows, and how to draw it on a canvas. */
export interface Scene {
  readonly kind: string;
  readonly description: string;
  readonly draw: (canvas: Canvas) => string;
}
