import { describe, expect, it } from 'vitest';
import { InvalidObjectKeyError, InvalidRunIdError, UsageError } from '../../src/core/errors.js';
import {
  DEFAULT_KEY_PREFIX,
  defaultOutputKeyTemplate,
  isValidRunId,
  joinOutputPrefix,
  ledgerKeys,
  MAX_JOB_ID_LENGTH,
  MAX_OBJECT_KEY_BYTES,
  type OutputKeyValues,
  objectKeyProblem,
  outputKeyForImage,
  parseRenderJobId,
  parseRunId,
  type RenderJobIdentity,
  renderJobId,
  renderOutputKey,
  runIdPattern,
  runsIndexKey,
  sidecarKeyOf,
  validateObjectKey,
  validateOutputKeyTemplate,
} from '../../src/core/keys.js';

/** BullMQ 6.7.0's own check in `Job.validateOptions` (src/classes/job.ts), copied to test against it. */
function bullmqRefuses(jobId: string): string | undefined {
  if (`${Number.parseInt(jobId, 10)}` === jobId) return 'Custom Id cannot be integers';
  if (jobId.includes(':') && jobId.split(':').length !== 3) return 'Custom Id cannot contain :';
  return undefined;
}

describe('run ids', () => {
  it.each(['a', '0', 'myrun', 'catalog-2024.05_v2', '123', 'a'.repeat(64), 'a..b', 'x-'])('accepts %j', (id) => {
    expect(isValidRunId(id)).toBe(true);
    expect(parseRunId(id)).toBe(id);
  });

  it.each(['', 'My-Run', '-run', '.run', '_run', 'a'.repeat(65), 'run:1', 'run/1', 'run 1', 'run\n', 'rün', '..'])(
    'refuses %j with InvalidRunIdError quoting it and stating the rule',
    (id) => {
      expect(isValidRunId(id)).toBe(false);
      expect(() => parseRunId(id)).toThrow(InvalidRunIdError);
      try {
        parseRunId(id);
      } catch (error) {
        expect((error as InvalidRunIdError).message).toContain(JSON.stringify(id));
        expect((error as InvalidRunIdError).message).toContain(
          "1–64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        );
        expect((error as InvalidRunIdError).value).toBe(id);
      }
    },
  );

  it('exports the pattern from the brief', () => {
    expect(runIdPattern.source).toBe('^[a-z0-9][a-z0-9._-]{0,63}$');
  });
});

describe('renderJobId', () => {
  it('is readable for plain ids', () => {
    expect(renderJobId({ run: 'myrun', rowId: 'row-12', style: 'modern' })).toBe('myrun.row-12.modern');
    expect(renderJobId({ run: 'myrun', rowId: 'Row_12', style: null })).toBe('myrun.Row_12');
  });

  it('is deterministic', () => {
    const identity = { run: 'r', rowId: 'shoes/12: blue', style: 'Art Déco' };
    expect(renderJobId(identity)).toBe(renderJobId({ ...identity }));
  });

  it('escapes everything but letters, digits, _ and - as ~HH of UTF-8 bytes', () => {
    expect(renderJobId({ run: 'r', rowId: 'a:b', style: null })).toBe('r.a~3Ab');
    expect(renderJobId({ run: 'r', rowId: 'a b/c', style: null })).toBe('r.a~20b~2Fc');
    expect(renderJobId({ run: 'r', rowId: 'café', style: null })).toBe('r.caf~C3~A9');
    expect(renderJobId({ run: 'r', rowId: '~', style: null })).toBe('r.~7E');
    expect(renderJobId({ run: 'shoes.v2', rowId: '1', style: null })).toBe('shoes~2Ev2.1');
    expect(renderJobId({ run: 'r', rowId: '🎨', style: null })).toBe('r.~F0~9F~8E~A8');
  });

  it('never contains ":" and is never refused by BullMQ', () => {
    const rowIds = ['1', '12', '-5', '007', '1e3', 'a:b', 'a:b:c', ':', '::', 'x'.repeat(500), ' ', '.', '..', '1.5'];
    for (const rowId of rowIds) {
      for (const style of [null, 'modern', '1', ':']) {
        for (const run of ['1', 'a', '0.1']) {
          const id = renderJobId({ run, rowId, style });
          expect(id).not.toContain(':');
          expect(bullmqRefuses(id)).toBeUndefined();
          expect(id.length).toBeLessThanOrEqual(MAX_JOB_ID_LENGTH);
        }
      }
    }
  });

  it('never reads as an integer, even for all-digit runs and rows', () => {
    const id = renderJobId({ run: '12', rowId: '34', style: null });
    expect(id).toBe('12.34');
    expect(`${Number.parseInt(id, 10)}`).not.toBe(id);
  });

  it('is injective: parts that concatenate alike give different ids', () => {
    const identities: RenderJobIdentity[] = [
      { run: 'a', rowId: 'b.c', style: null },
      { run: 'a.b', rowId: 'c', style: null },
      { run: 'a', rowId: 'b', style: 'c' },
      { run: 'a', rowId: 'b', style: '' },
      { run: 'a', rowId: 'b', style: null },
      { run: 'a', rowId: 'b', style: 'null' },
      { run: 'a', rowId: 'b.', style: null },
      { run: 'a', rowId: 'b~2Ec', style: null },
      { run: 'a', rowId: 'b~', style: '2Ec' },
      { run: 'a', rowId: 'B', style: null },
      { run: 'a', rowId: 'café', style: null },
      { run: 'a', rowId: 'cafe\u0301', style: null },
      { run: 'a', rowId: 'x'.repeat(300), style: null },
      { run: 'a', rowId: `${'x'.repeat(299)}y`, style: null },
      { run: 'a', rowId: 'x'.repeat(300), style: 's' },
    ];
    const ids = identities.map(renderJobId);
    expect(new Set(ids).size).toBe(identities.length);
  });

  it('shortens long ids with a sha256 suffix, keeping a readable start', () => {
    const rowId = `product-${'x'.repeat(400)}`;
    const id = renderJobId({ run: 'myrun', rowId, style: 'modern' });
    expect(id.length).toBe(MAX_JOB_ID_LENGTH);
    expect(id.startsWith('myrun.product-xxxx')).toBe(true);
    expect(id).toMatch(/~~[0-9a-f]{40}$/);
    expect(renderJobId({ run: 'myrun', rowId, style: 'classic' })).not.toBe(id);
  });

  it('does not cut an escape in half when shortening', () => {
    for (let padding = 0; padding < 6; padding++) {
      const id = renderJobId({ run: 'r', rowId: `${'a'.repeat(padding)}${'é'.repeat(100)}`, style: null });
      const readable = id.slice(0, id.indexOf('~~'));
      expect(readable).toMatch(/^r\.a*(~[0-9A-F]{2})*$/);
      expect(id.length).toBeLessThanOrEqual(MAX_JOB_ID_LENGTH);
    }
  });

  it('keeps ids at the limit readable and shortens ids one character over', () => {
    const fits = 'x'.repeat(MAX_JOB_ID_LENGTH - 'r.'.length);
    expect(renderJobId({ run: 'r', rowId: fits, style: null })).toBe(`r.${fits}`);
    expect(renderJobId({ run: 'r', rowId: `${fits}x`, style: null })).toContain('~~');
  });

  it('refuses lone surrogates, which have no UTF-8 form', () => {
    expect(() => renderJobId({ run: 'r', rowId: 'a\uD800', style: null })).toThrow(/lone surrogate/);
    expect(() => renderJobId({ run: 'r', rowId: 'a', style: '\uDC00' })).toThrow(RangeError);
  });
});

describe('parseRenderJobId', () => {
  it('reverses renderJobId for readable ids', () => {
    const identities: RenderJobIdentity[] = [
      { run: 'myrun', rowId: 'row-12', style: 'modern' },
      { run: 'myrun', rowId: 'row-12', style: null },
      { run: 'shoes.v2', rowId: 'a:b/c d.e~f', style: 'Art Déco 🎨' },
      { run: '1', rowId: '2', style: '' },
    ];
    for (const identity of identities) {
      expect(parseRenderJobId(renderJobId(identity))).toEqual(identity);
    }
  });

  it('returns undefined for shortened ids and ids depthq did not make', () => {
    expect(parseRenderJobId(renderJobId({ run: 'r', rowId: 'x'.repeat(400), style: null }))).toBeUndefined();
    for (const id of ['', 'plain', 'a.b.c.d', 'Run.row', 'r.a~4', 'r.a~zz', 'r.~41', 'r.a b', 'r.~C3', 'r.é', '.x']) {
      expect(parseRenderJobId(id)).toBeUndefined();
    }
  });
});

describe('objectKeyProblem and validateObjectKey', () => {
  it.each([
    'a',
    'run/style/id.jpg',
    'a/b/c/d.e.f',
    '...jpg',
    '.hidden',
    'a/..b/c',
    'x..',
    'café/ünïcode 🎨.png',
    'with space/and+plus=sign&x.jpg',
  ])('accepts %j', (key) => {
    expect(objectKeyProblem(key)).toBeUndefined();
    expect(validateObjectKey(key)).toBe(key);
  });

  it.each([
    ['', 'it is empty'],
    ['..', "'..' segment"],
    ['a/../b', "'..' segment"],
    ['../etc/passwd', "'..' segment"],
    ['a/..', "'..' segment"],
    ['.', "'.' segment"],
    ['a/./b', "'.' segment"],
    ['./a', "'.' segment"],
    ['/abs/key', "starts with '/'"],
    ['/', "starts with '/'"],
    ['a//b', "empty segment ('//')"],
    ['a/', "ends with '/'"],
    ['a\\b', 'backslash'],
    ['..\\..\\x', 'backslash'],
    ['a\u0000b', 'control character U+0000'],
    ['a\nb', 'control character U+000A'],
    ['a\u001Fb', 'control character U+001F'],
    ['a\u007Fb', 'control character U+007F'],
    ['a\u0080b', 'control character U+0080'],
    ['a\u009Fb', 'control character U+009F'],
    ['a\uD800b', 'lone surrogate'],
  ])('refuses %j: %s', (key, problem) => {
    expect(objectKeyProblem(key)).toContain(problem);
    expect(() => validateObjectKey(key)).toThrow(InvalidObjectKeyError);
    expect(() => validateObjectKey(key)).toThrow(problem);
  });

  it('gives each kind of problem its own message', () => {
    const messages = ['', 'a/../b', 'a/./b', '/a', 'a//b', 'a/', 'a\\b', 'a\tb', 'x'.repeat(1025)].map(
      objectKeyProblem,
    );
    expect(new Set(messages).size).toBe(messages.length);
  });

  it('accepts 1024 UTF-8 bytes and refuses 1025, counting bytes not characters', () => {
    expect(MAX_OBJECT_KEY_BYTES).toBe(1024);
    expect(objectKeyProblem('x'.repeat(1024))).toBeUndefined();
    expect(objectKeyProblem('x'.repeat(1025))).toBe("it is 1025 bytes long in UTF-8, over S3's limit of 1024");
    expect(objectKeyProblem('é'.repeat(512))).toBeUndefined();
    expect(objectKeyProblem(`${'é'.repeat(512)}x`)).toContain('1025 bytes');
  });

  it('accepts characters just outside the control ranges', () => {
    expect(objectKeyProblem('a\u0020b')).toBeUndefined();
    expect(objectKeyProblem('a\u007Eb')).toBeUndefined();
    expect(objectKeyProblem('a\u00A0b')).toBeUndefined();
  });

  it('names what it checked in the error', () => {
    expect(() => validateObjectKey('a//b', 'output key prefix')).toThrow(/^output key prefix "a\/\/b" is not allowed/);
  });
});

describe('joinOutputPrefix', () => {
  it('joins with exactly one slash', () => {
    expect(joinOutputPrefix('renders', 'r/s/1.jpg')).toBe('renders/r/s/1.jpg');
    expect(joinOutputPrefix('renders/', 'r/s/1.jpg')).toBe('renders/r/s/1.jpg');
    expect(joinOutputPrefix('a/b', 'c.jpg')).toBe('a/b/c.jpg');
  });

  it('treats an empty prefix as the bucket root', () => {
    expect(joinOutputPrefix('', 'r/1.jpg')).toBe('r/1.jpg');
  });

  it.each(['/renders', '../x', 'a/../b', 'a//', 'a//b/', '/', 'a\\b', 'a/./b', 'a\u0085'])(
    'refuses the prefix %j',
    (prefix) => {
      expect(() => joinOutputPrefix(prefix, 'k.jpg')).toThrow(InvalidObjectKeyError);
      expect(() => joinOutputPrefix(prefix, 'k.jpg')).toThrow(/output key prefix/);
    },
  );

  it('refuses an unsafe key', () => {
    expect(() => joinOutputPrefix('renders', '../k.jpg')).toThrow(InvalidObjectKeyError);
    expect(() => joinOutputPrefix('renders', '/k.jpg')).toThrow(InvalidObjectKeyError);
  });

  it('refuses a join over 1024 bytes', () => {
    expect(() => joinOutputPrefix('p'.repeat(600), 'k'.repeat(600))).toThrow(/over S3's limit/);
  });
});

describe('sidecarKeyOf and outputKeyForImage', () => {
  it('puts the sidecar next to the output', () => {
    expect(sidecarKeyOf('r/s/1.jpg')).toBe('r/s/1.jpg.json');
    expect(() => sidecarKeyOf(`${'x'.repeat(1020)}.jpg`)).toThrow(InvalidObjectKeyError);
  });

  it('keeps the key for a single image and numbers several from 1', () => {
    expect(outputKeyForImage('r/s/1.webp', 0, 1)).toBe('r/s/1.webp');
    expect(outputKeyForImage('r/s/1.webp', 0, 4)).toBe('r/s/1_1.webp');
    expect(outputKeyForImage('r/s/1.webp', 3, 4)).toBe('r/s/1_4.webp');
  });

  it('does not mistake a dot in a folder or a leading dot for an extension', () => {
    expect(outputKeyForImage('r.v2/s/photo', 1, 2)).toBe('r.v2/s/photo_2');
    expect(outputKeyForImage('r/.hidden', 1, 2)).toBe('r/.hidden_2');
    expect(outputKeyForImage('noext', 0, 2)).toBe('noext_1');
  });

  it.each([
    [-1, 2],
    [2, 2],
    [0, 0],
    [0.5, 2],
  ])('refuses image %d of %d', (index, count) => {
    expect(() => outputKeyForImage('k.jpg', index, count)).toThrow(RangeError);
  });
});

describe('renderOutputKey', () => {
  const values: OutputKeyValues = {
    run: 'myrun',
    id: 'row-12',
    style: 'modern',
    seed: 1234,
    ext: 'jpg',
    model: 'black-forest-labs/flux-depth-pro',
    meta: { sku: 'SKU-9', color: 'blue' },
  };

  it('renders the default template', () => {
    expect(defaultOutputKeyTemplate).toBe('{run}/{style}/{id}.{ext}');
    expect(renderOutputKey(defaultOutputKeyTemplate, values)).toBe('myrun/modern/row-12.jpg');
  });

  it('drops a whole {style} segment when the style is null', () => {
    expect(renderOutputKey(defaultOutputKeyTemplate, { ...values, style: null })).toBe('myrun/row-12.jpg');
    expect(renderOutputKey('{style}/{id}.{ext}', { ...values, style: null })).toBe('row-12.jpg');
  });

  it('writes nothing for a null style that shares a segment', () => {
    expect(renderOutputKey('{run}/{id}-{style}.{ext}', { ...values, style: null })).toBe('myrun/row-12-.jpg');
  });

  it('renders every placeholder', () => {
    expect(renderOutputKey('{model}/{run}/{meta.sku}-{meta.color}/{id}_{seed}.{ext}', values)).toBe(
      'flux-depth-pro/myrun/SKU-9-blue/row-12_1234.jpg',
    );
    expect(renderOutputKey('{id}/{id}.{ext}', values)).toBe('row-12/row-12.jpg');
  });

  it('lets row ids make folders', () => {
    expect(renderOutputKey(defaultOutputKeyTemplate, { ...values, id: 'shoes/123' })).toBe(
      'myrun/modern/shoes/123.jpg',
    );
  });

  it('refuses an unknown placeholder, naming it and listing the known ones', () => {
    expect(() => renderOutputKey('{run}/{row}.{ext}', values)).toThrow(UsageError);
    expect(() => renderOutputKey('{run}/{row}.{ext}', values)).toThrow(
      /unknown placeholder \{row\}: known placeholders are \{run\}, \{id\}, \{style\}, \{seed\}, \{ext\}, \{model\} and \{meta\.<column>\}/,
    );
    expect(() => renderOutputKey('{meta.}/{id}', values)).toThrow(/unknown placeholder \{meta\.\}/);
    expect(() => renderOutputKey('{}/{id}', values)).toThrow(/unknown placeholder \{\}/);
    expect(() => renderOutputKey('{constructor}/{id}', values)).toThrow(/unknown placeholder/);
  });

  it('refuses stray braces', () => {
    expect(() => renderOutputKey('{run/{id}', values)).toThrow(/not closed/);
    expect(() => renderOutputKey('{run}}/{id}', values)).toThrow(/'}' without a '{'/);
    expect(() => renderOutputKey('{r{un}}/{id}', values)).toThrow(/not closed/);
    expect(() => renderOutputKey('run}/{id}', values)).toThrow(UsageError);
  });

  it('refuses a metadata column the row does not have', () => {
    expect(() => renderOutputKey('{meta.size}/{id}', values)).toThrow(/no metadata column "size"/);
    expect(() => renderOutputKey('{meta.toString}/{id}', values)).toThrow(/no metadata column "toString"/);
    const { meta: _meta, ...withoutMeta } = values;
    expect(() => renderOutputKey('{meta.sku}/{id}', withoutMeta)).toThrow(/no metadata column/);
  });

  it('refuses {model} without a model', () => {
    const { model: _model, ...withoutModel } = values;
    expect(() => renderOutputKey('{model}/{id}', withoutModel)).toThrow(/no model was given/);
  });

  it.each([
    ['../../etc', "'..' segment"],
    ['..', "'..' segment"],
    ['a/../../b', "'..' segment"],
    ['.', "'.' segment"],
    ['/etc/passwd', "starts with '/'"],
    ['a//b', "empty segment ('//')"],
    ['a/', "ends with '/'"],
    ['a\\..\\b', 'backslash'],
    ['a\u0000', 'control character U+0000'],
    ['a\u0085', 'control character U+0085'],
    ['', 'it is empty'],
  ])('refuses the row id %j instead of normalising it (%s)', (id, problem) => {
    let thrown: unknown;
    try {
      renderOutputKey(defaultOutputKeyTemplate, { ...values, id });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidObjectKeyError);
    expect((thrown as Error).message).toContain('{id}');
    expect((thrown as Error).message).toContain(problem);
  });

  it('refuses unsafe values of every placeholder, naming it', () => {
    expect(() => renderOutputKey(defaultOutputKeyTemplate, { ...values, style: '..' })).toThrow(/\{style\}/);
    expect(() => renderOutputKey(defaultOutputKeyTemplate, { ...values, style: '' })).toThrow(/\{style\}.*empty/);
    expect(() => renderOutputKey(defaultOutputKeyTemplate, { ...values, run: '..' })).toThrow(/\{run\}/);
    expect(() => renderOutputKey('{meta.sku}/{id}', { ...values, meta: { sku: '../x' } })).toThrow(/\{meta\.sku\}/);
    expect(() => renderOutputKey('{meta.sku}.{ext}', { ...values, meta: { sku: '' } })).toThrow(/empty/);
    expect(() => renderOutputKey('{id}.{ext}', { ...values, ext: '/jpg' })).toThrow(/\{ext\}/);
  });

  it('refuses templates that produce an unsafe key', () => {
    expect(() => renderOutputKey('/{run}/{id}.{ext}', values)).toThrow(InvalidObjectKeyError);
    expect(() => renderOutputKey('{run}/../{id}.{ext}', values)).toThrow(/'\.\.' segment/);
    expect(() => renderOutputKey('{run}//{id}.{ext}', values)).toThrow(/empty segment/);
    expect(() => renderOutputKey('{run}/{id}/', values)).toThrow(/ends with/);
    expect(() => renderOutputKey('{style}', { ...values, style: null })).toThrow(/empty/);
  });

  it('refuses keys over 1024 bytes', () => {
    expect(() => renderOutputKey('{id}/{id}.{ext}', { ...values, id: 'x'.repeat(600) })).toThrow(/over S3's limit/);
  });
});

describe('validateOutputKeyTemplate', () => {
  it('accepts good templates and returns them', () => {
    for (const template of [defaultOutputKeyTemplate, '{run}/{meta.sku}/{id}-{seed}.{ext}', 'fixed/{id}.{ext}']) {
      expect(validateOutputKeyTemplate(template)).toBe(template);
    }
  });

  it('refuses templates that can never give a safe key, before any row', () => {
    for (const template of ['/{id}.{ext}', '{run}/../{id}', '{run}//{id}', '{id}/', '{row}', '{id', '{style}']) {
      expect(() => validateOutputKeyTemplate(template)).toThrow(UsageError);
    }
  });
});

describe('ledger keys', () => {
  it('builds every key of a run under one base', () => {
    expect(ledgerKeys('depthq', 'myrun')).toEqual({
      meta: 'depthq:run:myrun:meta',
      counters: 'depthq:run:myrun:counters',
      money: 'depthq:run:myrun:money',
      results: 'depthq:run:myrun:results',
      reservations: 'depthq:run:myrun:reservations',
      settlements: 'depthq:run:myrun:settlements',
      state: 'depthq:run:myrun:state',
      payloads: 'depthq:run:myrun:payloads',
      pause: 'depthq:run:myrun:pause',
    });
    expect(DEFAULT_KEY_PREFIX).toBe('depthq');
  });

  it('keeps runs and prefixes apart', () => {
    expect(ledgerKeys('test-1', 'a').meta).not.toBe(ledgerKeys('test-2', 'a').meta);
    expect(ledgerKeys('depthq', 'a').meta).not.toBe(ledgerKeys('depthq', 'b').meta);
    expect(ledgerKeys('depthq:test', 'a').meta).toBe('depthq:test:run:a:meta');
  });

  it('refuses invalid run ids and prefixes', () => {
    expect(() => ledgerKeys('depthq', 'a:b')).toThrow(InvalidRunIdError);
    expect(() => ledgerKeys('depthq', '')).toThrow(InvalidRunIdError);
    expect(() => ledgerKeys('', 'a')).toThrow(UsageError);
    expect(() => ledgerKeys('dep thq', 'a')).toThrow(/Redis key prefix/);
    expect(() => runsIndexKey('a\nb')).toThrow(UsageError);
  });

  it('names the index of all runs', () => {
    expect(runsIndexKey('depthq')).toBe('depthq:runs');
  });
});
