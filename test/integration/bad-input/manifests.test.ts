/**
 * Bad manifests (docs/input-rules.md): each is refused with its exact message — file:line:column (column) — exit code
 * 2, no stack trace, and nothing enqueued, spent or written: every Redis key (queue, ledger, ingest sources of the run
 * that exists) and every object in the bucket are the same after as before. `depthq ingest` runs in-process.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeConnection, connectProducer, createProducerConnection } from '../../../src/queue/connections.js';
import { putBytesObject } from '../../../src/storage/s3.js';
import {
  controlImages,
  type EnvironmentChanges,
  expectRefused,
  latin1,
  literal,
  runDepthq,
  utf16le,
  type WorldSnapshotter,
  worldOf,
  writeCase,
} from '../../helpers/bad-inputs.js';
import { useLocalStack } from '../../helpers/stack.js';

/** Generous: the fixtures and a first ingest on a machine other test files load too. */
const SETUP_TIMEOUT_MS = 180_000;

const stack = useLocalStack({ simulator: false });
let redis: Redis;
let root: string;
let world: WorldSnapshotter;
let environment: EnvironmentChanges;
let bucket: string;

const HEADER = 'id,control_image,prompt';
const GOOD_ROWS = 'a,controls/a.jpg,a house by a lake\nb,controls/b.jpg,a street at night\n';
const ROWS_REFUSED =
  'nothing was enqueued. Fix them and ingest again, or pass --skip-invalid to enqueue the valid rows';

beforeAll(async () => {
  const running = stack();
  if (running.redis === undefined || running.s3 === undefined) throw new Error('the stack lacks Redis or S3');
  bucket = running.s3.bucket;
  redis = createProducerConnection(running.redis.url);
  await connectProducer(redis);
  const s3 = running.s3.client();
  const jpeg = await controlImages.jpeg();
  for (const key of ['controls/a.jpg', 'controls/b.jpg']) {
    await putBytesObject(s3, { bucket, key }, jpeg, 'image/jpeg');
  }
  world = worldOf(redis, s3, bucket);
  environment = { ...running.env(), DEPTHQ_PREFIX: 'badinput' };
  root = await mkdtemp(path.join(os.tmpdir(), 'depthq-bad-manifests-'));
  // The run every case ingests into already exists with two jobs: a refused ingest must leave it exactly as it is.
  const baseline = await writeCase(root, 'manifest.csv', `${HEADER}\n${GOOD_ROWS}`);
  const created = await runDepthq(['ingest', baseline, '--run', 'villa', '--budget', '10'], environment);
  expect(created.stderr).toBe('');
  expect(created.code).toBe(0);
  expect(created.stdout).toContain('Enqueued 2 new jobs.');
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  await closeConnection(redis);
  await rm(root, { recursive: true, force: true });
});

/** Ingests `content` (as manifest.csv) into the existing run; it must be refused with exactly `expected` on stderr. */
async function refused(content: string | Uint8Array, expected: string, run = 'villa'): Promise<void> {
  const file = await writeCase(root, 'manifest.csv', content);
  await expectRefused(world, ['ingest', file, '--run', run], environment, expected);
}

const saveAsUtf8 =
  'save it as UTF-8 (in Excel: File › Save As › "CSV UTF-8 (Comma delimited)"; in other editors: encoding UTF-8) and ingest again';
const fileRefused = 'depthq: manifest.csv: 1 problem; nothing was enqueued. Fix them and ingest again\n';

describe('bad manifests: encodings', () => {
  it('UTF-16 with a byte-order mark', async () => {
    await refused(
      utf16le(`${HEADER}\n${GOOD_ROWS}`),
      `manifest.csv:1: is UTF-16 text (it starts with a UTF-16 byte-order mark), and depthq reads CSV as UTF-8: ${saveAsUtf8}\n${fileRefused}`,
    );
  });

  it('UTF-16 without a byte-order mark', async () => {
    await refused(
      utf16le(`${HEADER}\n${GOOD_ROWS}`, false),
      `manifest.csv:1: is UTF-16 text without a byte-order mark (every other byte is zero), and depthq reads CSV as UTF-8: ${saveAsUtf8}\n${fileRefused}`,
    );
  });

  it('Latin-1 bytes that are not UTF-8, on the cell that holds them', async () => {
    await refused(
      latin1(`${HEADER}\na,controls/a.jpg,a café by a lake\n`),
      'manifest.csv:2:3 (prompt): holds bytes that are not UTF-8 (shown as �): save the manifest as UTF-8 (in Excel: "CSV UTF-8")\n' +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('an Excel workbook saved under a .csv name', async () => {
    await refused(
      Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00]), Buffer.alloc(64, 1)]),
      'manifest.csv:1: is a ZIP archive (an Excel .xlsx workbook or another document), not CSV text: in Excel, File › Save As › "CSV UTF-8 (Comma delimited)"\n' +
        fileRefused,
    );
  });
});

describe('bad manifests: CSV syntax and size', () => {
  it('a quote that is never closed', async () => {
    await refused(
      `${HEADER}\na,controls/a.jpg,"a house\nb,controls/b.jpg,a street\n`,
      'manifest.csv:2: a quoted field that starts in this record is never closed, so the rest of the file reads as one field: close the quote, and write a quote inside a quoted field as two ("") (nothing after this line was read)\n' +
        fileRefused,
    );
  });

  it('a quote inside an unquoted field', async () => {
    await refused(
      `${HEADER}\na,controls/a.jpg,a 5" nail\n`,
      'manifest.csv:2: a quote appears inside an unquoted field: quote the whole field and double the quote, e.g. "5"" nail" (nothing after this line was read)\n' +
        fileRefused,
    );
  });

  it('a 10 MB field, on its column, without quoting it back', async () => {
    await refused(
      `${HEADER}\na,controls/a.jpg,${'x'.repeat(10 * 1024 * 1024)}\n`,
      "manifest.csv:2:3 (prompt): holds 10,485,760 characters, over depthq's limit of 10,000 for one cell: shorten it (a cell this long is usually a paste gone wrong, or a quote that is closed much later than meant)\n" +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('a row with more fields than the header has columns', async () => {
    await refused(
      `${HEADER}\na,controls/a.jpg,a house, by a lake\n`,
      'manifest.csv:2: has 4 fields but the header has 3 columns: quote fields that contain commas ("a, b")\n' +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });
});

describe('bad manifests: values', () => {
  it('wrong types, every one listed on its column', async () => {
    await refused(
      'id,control_image,prompt,steps,guidance,prompt_upsampling,seed\na,controls/a.jpg,a house,abc,high,maybe,-1\n',
      'manifest.csv:2:4 (steps): steps must be a whole number from 15 to 50, got "abc"\n' +
        'manifest.csv:2:5 (guidance): guidance must be a number from 1 to 100, got "high"\n' +
        'manifest.csv:2:6 (prompt_upsampling): prompt_upsampling must be true or false, got "maybe"\n' +
        'manifest.csv:2:7 (seed): seed must be a whole number from 0 to 2147483647, got -1\n' +
        `depthq: manifest.csv: 4 problems in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('a fraction where a whole number goes', async () => {
    await refused(
      'id,control_image,prompt,steps\na,controls/a.jpg,a house,20.5\n',
      'manifest.csv:2:4 (steps): steps must be a whole number from 15 to 50, got "20.5": write 20 or 21\n' +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('duplicate ids, naming both lines', async () => {
    await refused(
      `${HEADER}\nc,controls/a.jpg,a house\nc,controls/b.jpg,a street\n`,
      'manifest.csv:3:1 (id): id "c" is also on line 2: ids must be unique in a manifest; rename one of them\n' +
        `depthq: manifest.csv: 1 problem in 1 row of 2; ${ROWS_REFUSED}\n`,
    );
  });

  it('a row the run has with other content, naming both lines', async () => {
    await refused(
      `${HEADER}\na,controls/a.jpg,a house by the sea\n`,
      'manifest.csv:2:1 (id): id "a" was already enqueued from manifest.csv line 2 with different content: prompt is "a house by a lake" there, "a house by the sea" here. An enqueued job does not change: give the row a new id to render it anew, restore the old values, or use a new run\n' +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('a misspelt model input as a column', async () => {
    await refused(
      'id,control_image,prompt,guidence\na,controls/a.jpg,a house,3\n',
      'manifest.csv:1:4 (guidence): "guidence" looks like a misspelling of guidance: rename it to guidance, or give the metadata column a clearly different name\n' +
        fileRefused,
      'fresh',
    );
  });
});

describe('bad manifests: keys', () => {
  it("a control image key with '..'", async () => {
    await refused(
      `${HEADER}\na,../secrets/a.jpg,a house\n`,
      `manifest.csv:2:2 (control_image): key "../secrets/a.jpg" is not usable: it has a '..' segment, which would climb out of its prefix\ndepthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it("a control image key with '//'", async () => {
    await refused(
      `${HEADER}\na,controls//a.jpg,a house\n`,
      `manifest.csv:2:2 (control_image): key "controls//a.jpg" is not usable: it has an empty segment ('//')\ndepthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('a control character in a key, written as an escape, never raw', async () => {
    await refused(
      `${HEADER}\na,controls/a\u0007.jpg,a house\n`,
      `manifest.csv:2:2 (control_image): key "controls/a\\u0007.jpg" is not usable: it contains the control character U+0007\ndepthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('an escape sequence in an id, written as an escape so it cannot drive the terminal', async () => {
    await refused(
      `${HEADER}\n\u001b[31mred,controls/a.jpg,a house\n`,
      `manifest.csv:2:1 (id): id "\\u001b[31mred" cannot be part of the output key ({run}/{style}/{id}.{ext}): it contains the control character U+001B; use another id\ndepthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it("an output key with '..'", async () => {
    await refused(
      'id,control_image,prompt,output_key\na,controls/a.jpg,a house,../elsewhere/a.png\n',
      `manifest.csv:2:4 (output_key): output key "../elsewhere/a.png" is not allowed: it has a '..' segment, which would climb out of its prefix\n` +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });

  it('an s3:// location with a bucket name S3 refuses', async () => {
    await refused(
      `${HEADER}\na,s3://Shots_2026/a.jpg,a house\n`,
      `manifest.csv:2:2 (control_image): "s3://Shots_2026/a.jpg": "Shots_2026" is not an S3 bucket name, which must use lowercase letters, digits, '.' and '-' only, and start and end with a letter or digit\n` +
        `depthq: manifest.csv: 1 problem in 1 row of 1; ${ROWS_REFUSED}\n`,
    );
  });
});

describe('bad manifests: files', () => {
  it('a header only', async () => {
    await refused(`${HEADER}\n`, `manifest.csv:1: has a header but no rows: add one row per image\n${fileRefused}`);
  });

  it('an empty file', async () => {
    await refused(
      '',
      `manifest.csv:1: is empty: the first line must be a header, e.g. id,control_image,prompt\n${fileRefused}`,
    );
  });

  it('no id column', async () => {
    await refused(
      'control_image,prompt\ncontrols/a.jpg,a house\n',
      `manifest.csv:1: there is no id column: add one with a unique id per row (it names the job and its output)\n${fileRefused}`,
    );
  });

  it('a directory', async () => {
    const directory = path.join(await mkdtemp(path.join(root, 'case-')), 'shots.csv');
    await mkdir(directory);
    await expectRefused(
      world,
      ['ingest', directory, '--run', 'villa'],
      environment,
      `depthq: ${directory} is a folder, not a CSV file\n`,
    );
  });

  it('a missing file', async () => {
    const missing = path.join(root, 'no-such-manifest.csv');
    await expectRefused(
      world,
      ['ingest', missing, '--run', 'villa'],
      environment,
      `depthq: ${missing} does not exist\n`,
    );
  });

  it('a missing styles file, naming its flag', async () => {
    const file = await writeCase(root, 'manifest.csv', `${HEADER}\n${GOOD_ROWS}`);
    const styles = path.join(root, 'no-such-styles.csv');
    await expectRefused(
      world,
      ['ingest', file, '--run', 'villa', '--styles', styles],
      environment,
      new RegExp(`^depthq: --styles: ${literal(styles)} does not exist\\n$`),
    );
  });

  it('a new run is not created by a refused manifest', async () => {
    await refused(
      `${HEADER}\n`,
      `manifest.csv:1: has a header but no rows: add one row per image\n${fileRefused}`,
      'new-run',
    );
    expect(await redis.keys('badinput:*new-run*')).toEqual([]);
  });
});
