/**
 * The demo's local output folder (`./demo-output` by default), replaced as a whole on every run; `depthq sheet` writes
 * its files through writeRelativeFile.
 *
 * Replacing means deleting, so the demo only ever deletes a folder it made itself: one holding its marker file, or an
 * empty one. Anything else — `--out .` in a project, `--out ~` — is refused before the demo starts. The new content is
 * written to a sibling folder first and swapped in at the end, so a failed or interrupted run leaves the previous
 * output as it was.
 */
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../core/errors.js';

/** Marks a folder as the demo's, so the next run may replace it. */
export const DEMO_OUTPUT_MARKER = '.depthq-demo-output';

async function statOrUndefined(target: string) {
  try {
    return await stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Throws a UsageError (exit code 2) when `directory` exists and is not the demo's to replace. */
export async function checkOutputDirectory(directory: string): Promise<void> {
  const absolute = path.resolve(directory);
  if (absolute === path.parse(absolute).root) {
    throw new UsageError(`--out ${directory} is the root of the file system; choose a folder of its own`);
  }
  const found = await statOrUndefined(absolute);
  if (found === undefined) return;
  if (!found.isDirectory()) {
    throw new UsageError(`--out ${directory} exists and is not a folder; choose another path or remove it`);
  }
  const entries = await readdir(absolute);
  if (entries.length === 0 || entries.includes(DEMO_OUTPUT_MARKER)) return;
  throw new UsageError(
    `--out ${directory} already holds files that the demo did not write, and the demo replaces its output folder ` +
      'as a whole: choose a new or empty folder',
  );
}

/** A new, empty folder beside `directory` (same file system, so the final swap is a rename) with the marker in it. */
export async function createStagingDirectory(directory: string): Promise<string> {
  const absolute = path.resolve(directory);
  await mkdir(path.dirname(absolute), { recursive: true });
  const staging = await mkdtemp(`${absolute}.partial-`);
  // mkdtemp makes the folder private (0700); the output is for people to open and share like any other folder.
  await chmod(staging, 0o755);
  await writeFile(
    path.join(staging, DEMO_OUTPUT_MARKER),
    'Written by `depthq demo`, which replaces this folder on its next run.\n',
  );
  return staging;
}

/** Swaps the staged folder in for `directory`, after checking again that the folder is still the demo's to replace. */
export async function replaceOutputDirectory(staging: string, directory: string): Promise<void> {
  const absolute = path.resolve(directory);
  await checkOutputDirectory(absolute);
  await rm(absolute, { recursive: true, force: true });
  await rename(staging, absolute);
}

/** Writes `bytes` at `relativePath` (`/`-separated) under `root`, creating folders as needed. */
export async function writeRelativeFile(root: string, relativePath: string, bytes: Uint8Array | string): Promise<void> {
  const target = path.resolve(root, ...relativePath.split('/'));
  if (!target.startsWith(`${path.resolve(root)}${path.sep}`)) {
    throw new RangeError(`${relativePath} would be written outside ${root}`);
  }
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, bytes);
}
