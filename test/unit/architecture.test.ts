// The layers of docs/ARCHITECTURE.md, enforced: an import may point inward or stay in its layer, never outward.
// Imports are read with a regex (static `import … from`, `export … from`, `import type`, bare `import '…'`),
// relative paths resolved; libraries and node: modules are not layered. Also: no source file over 600 lines.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Outer to inner: a folder may import its own layer and any layer with a higher number. */
const layers: ReadonlyArray<readonly string[]> = [
  ['src/cli', 'workers', 'scripts', 'src/demo'],
  ['src/worker', 'src/ingest', 'src/pipeline', 'src/runs', 'src/dashboard'],
  ['src/providers', 'src/storage', 'src/queue', 'src/ledger', 'src/sim', 'src/local', 'src/logging', 'src/config'],
  ['src/core'],
];

/** Imports that point outward today, each with why it stays. Format: 'from-file → imported-file'. */
const allowed: ReadonlyMap<string, string> = new Map<string, string>([]);

const MAX_LINES = 600;
/** Files allowed over MAX_LINES, each with why. */
const longFiles: ReadonlyMap<string, string> = new Map<string, string>([]);

function sourceFiles(dir: string): string[] {
  const abs = path.join(root, dir);
  const out: string[] = [];
  for (const name of readdirSync(abs)) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...sourceFiles(rel));
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

function layerOf(file: string): number | undefined {
  const index = layers.findIndex((folders) => folders.some((folder) => file.startsWith(`${folder}/`)));
  return index === -1 ? undefined : index;
}

const importPattern = /^\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;

function relativeImports(file: string): string[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  const out: string[] = [];
  for (const match of text.matchAll(importPattern)) {
    const specifier = match[1] ?? match[2];
    if (specifier?.startsWith('.')) {
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      out.push(resolved.replace(/\.js$/, '.ts'));
    }
  }
  return out;
}

const files = ['src', 'workers', 'scripts'].flatMap(sourceFiles);

describe('architecture', () => {
  it('places every source folder in a layer', () => {
    const unplaced = files.filter((file) => layerOf(file) === undefined);
    expect(unplaced).toEqual([]);
  });

  it('finds the imports it checks (the regex reads this tree)', () => {
    expect(relativeImports('src/ledger/run-ledger.ts').some((target) => target.startsWith('src/core/'))).toBe(true);
    expect(relativeImports('workers/render-worker.ts').length).toBeGreaterThan(0);
  });

  it('has no import from an inner layer to an outer one', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const target of relativeImports(file)) {
        const to = layerOf(target);
        if (from === undefined || to === undefined || to >= from) continue;
        const edge = `${file} → ${target}`;
        if (!allowed.has(edge)) violations.push(edge);
      }
    }
    expect(violations).toEqual([]);
  });

  it('keeps every allow-listed import still in use', () => {
    const edges = new Set(files.flatMap((file) => relativeImports(file).map((target) => `${file} → ${target}`)));
    expect([...allowed.keys()].filter((edge) => !edges.has(edge))).toEqual([]);
  });

  it(`has no source file over ${MAX_LINES} lines`, () => {
    const long = files
      .map((file) => ({ file, lines: readFileSync(path.join(root, file), 'utf8').split('\n').length - 1 }))
      .filter(({ file, lines }) => lines > MAX_LINES && !longFiles.has(file))
      .map(({ file, lines }) => `${file}: ${lines} lines`);
    expect(long).toEqual([]);
  });
});
