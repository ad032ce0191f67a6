import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { defaultOutputKeyTemplate, renderJobId } from '../../src/core/keys.js';
import {
  type CsvRecordLike,
  formatManifestProblem,
  type InputValue,
  likelyMisspellingOf,
  ManifestClaims,
  type ManifestContext,
  type ManifestLayout,
  manifestRowJobs,
  parseInputCell,
  parseInputDefaults,
  parsePromptTemplate,
  parseS3Location,
  planManifestColumns,
  planStyles,
  type StyleDefinition,
  styleTemplateProblems,
} from '../../src/core/manifest/index.js';
import { fluxDepthDev, fluxDepthPro } from '../../src/core/models.js';
import { deriveSeed } from '../../src/core/seed.js';

const steps = fluxDepthPro.inputs.steps;
const guidance = fluxDepthPro.inputs.guidance;
const upsampling = fluxDepthPro.inputs.prompt_upsampling;
const format = fluxDepthPro.inputs.output_format;
const seed = fluxDepthPro.inputs.seed;
if (!steps || !guidance || !upsampling || !format || !seed) throw new Error('flux-depth-pro lost an input');

function record(line: number, text: string): CsvRecordLike {
  return { line, fields: text.split('|') };
}

function layoutOf(header: string, promptOptional = false): ManifestLayout {
  const planned = planManifestColumns(record(1, header), { file: 'm.csv', model: fluxDepthPro, promptOptional });
  expect(planned.problems).toEqual([]);
  return planned.layout;
}

function contextOf(layout: ManifestLayout, overrides: Partial<ManifestContext> = {}): ManifestContext {
  return {
    file: 'm.csv',
    run: 'run-1',
    model: fluxDepthPro,
    layout,
    styles: undefined,
    defaults: {},
    defaultBucket: 'controls-bucket',
    output: { bucket: 'out-bucket', prefix: 'renders', template: defaultOutputKeyTemplate },
    claims: new ManifestClaims(),
    ...overrides,
  };
}

describe('typed cells', () => {
  it.each<[string, string, InputValue, boolean]>([
    ['integer', '20', 20, false],
    ['integer with spaces', ' 20 ', 20, true],
    ['integer written 20.0', '20.0', 20, true],
    ['integer with a plus', '+20', 20, true],
    ['integer with leading zeros', '020', 20, true],
  ])('reads an %s unambiguously', (_name, text, value, normalised) => {
    expect(parseInputCell('steps', steps, text)).toEqual({ ok: true, value, normalised });
  });

  it.each<[string, string, string]>([
    ['a fraction for a whole number', '20.5', 'steps must be a whole number from 15 to 50, got "20.5": write 20 or 21'],
    ['a number out of range', '60', 'steps must be a whole number from 15 to 50, got 60'],
    ['thousands separators', '1,000', 'write digits only, e.g. 1000'],
    ['an exponent', '2e1', 'write it in plain digits, e.g. 20'],
    ['words', 'twenty', 'steps must be a whole number from 15 to 50, got "twenty"'],
  ])('refuses %s with a suggestion', (_name, text, message) => {
    const parsed = parseInputCell('steps', steps, text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toContain(message);
  });

  it('reads numbers and refuses a decimal comma', () => {
    expect(parseInputCell('guidance', guidance, '3.5')).toEqual({ ok: true, value: 3.5, normalised: false });
    expect(parseInputCell('guidance', guidance, '.5')).toMatchObject({ ok: false });
    expect(parseInputCell('guidance', guidance, '3,5')).toEqual({
      ok: false,
      message: 'guidance must be a number from 1 to 100, got "3,5": use a point as decimal separator, e.g. 3.5',
    });
  });

  it('reads booleans in the spellings people use and nothing else', () => {
    for (const text of ['TRUE', 'true', 'Yes', '1', ' true ']) {
      expect(parseInputCell('prompt_upsampling', upsampling, text)).toMatchObject({ ok: true, value: true });
    }
    for (const text of ['FALSE', 'no', '0']) {
      expect(parseInputCell('prompt_upsampling', upsampling, text)).toMatchObject({ ok: true, value: false });
    }
    expect(parseInputCell('prompt_upsampling', upsampling, 'true')).toEqual({
      ok: true,
      value: true,
      normalised: false,
    });
    expect(parseInputCell('prompt_upsampling', upsampling, 'maybe')).toEqual({
      ok: false,
      message: 'prompt_upsampling must be true or false, got "maybe"',
    });
  });

  it('matches enum values regardless of case and lists them when none matches', () => {
    expect(parseInputCell('output_format', format, 'PNG')).toEqual({ ok: true, value: 'png', normalised: true });
    expect(parseInputCell('output_format', format, 'gif')).toEqual({
      ok: false,
      message: 'output_format must be one of "jpg", "png", got "gif"',
    });
  });

  it('treats an empty cell as not given and bounds seeds to what every backend holds', () => {
    expect(parseInputCell('steps', steps, '   ')).toEqual({ ok: true, value: undefined, normalised: false });
    expect(parseInputCell('seed', seed, '-1')).toMatchObject({ ok: false });
    expect(parseInputCell('seed', seed, '2147483648')).toMatchObject({ ok: false });
    expect(parseInputCell('seed', seed, '2147483647')).toMatchObject({ ok: true, value: 2147483647 });
  });
});

describe('--set defaults', () => {
  it('types values like cells', () => {
    expect(parseInputDefaults(['steps=30', 'prompt_upsampling=TRUE', 'prompt=a house'], fluxDepthPro)).toEqual({
      steps: 30,
      prompt_upsampling: true,
      prompt: 'a house',
    });
  });

  it('names every bad flag in one error', () => {
    let error: unknown;
    try {
      parseInputDefaults(['steps', 'guidence=3', 'control_image=x', 'steps=1.5'], fluxDepthPro);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as UsageError).message;
    expect(message).toContain('--set takes key=value, e.g. --set steps=30, got "steps"');
    expect(message).toContain('--set guidence=3: black-forest-labs/flux-depth-pro has no input named "guidence"');
    expect(message).toContain("control_image comes from each row's control_image column");
    expect(message).toContain('--set steps=1.5: steps must be a whole number from 15 to 50, got "1.5": write 1 or 2');
  });
});

describe('S3 locations', () => {
  it('reads bare keys in the default bucket and s3:// URIs', () => {
    expect(parseS3Location(' controls/a.png ', 'b-1')).toEqual({
      ok: true,
      location: { bucket: 'b-1', key: 'controls/a.png' },
    });
    expect(parseS3Location('s3://other-bucket/x/ü y.png', 'b-1')).toEqual({
      ok: true,
      location: { bucket: 'other-bucket', key: 'x/ü y.png' },
    });
  });

  it.each<[string, string | undefined, string]>([
    ['s3:/bucket/a.png', 'b-1', 'is not an s3:// URI: write s3://bucket/key (two slashes)'],
    ['s3://Bad_Bucket/a.png', 'b-1', '"Bad_Bucket" is not an S3 bucket name'],
    ['s3://bucket-1', 'b-1', 'names no key: write s3://bucket-1/path/to/image.png'],
    ['s3://bucket-1/../a.png', 'b-1', "it has a '..' segment"],
    ['https://example.com/a.png', 'b-1', 'is a web URL: control_image must be an S3 object'],
    ['gs://bucket/a.png', 'b-1', 'is not an S3 location'],
    ['/controls/a.png', 'b-1', "starts with '/'"],
    ['controls/a.png', undefined, 'S3_BUCKET is not set: write s3://bucket/controls/a.png or set S3_BUCKET'],
    ['', 'b-1', 'control_image is empty'],
  ])('refuses %j with a message saying what to write', (text, bucket, words) => {
    const parsed = parseS3Location(text, bucket);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toContain(words);
  });
});

describe('the header', () => {
  it('recognises columns in any case and spacing, model inputs, and metadata', () => {
    const layout = layoutOf(' ID |Control Image|prompt|Steps|room|style|output-key');
    expect([...layout.known.keys()].sort()).toEqual(['control_image', 'id', 'output_key', 'prompt', 'style']);
    expect(layout.inputs.map((column) => column.header)).toEqual(['Steps']);
    expect(layout.metadata.map((column) => column.header)).toEqual(['room']);
  });

  it('reports missing columns, repeats, misspellings, other models and image inputs at once', () => {
    const { problems } = planManifestColumns(record(1, 'id|guidence|num_outputs|room|Room|room'), {
      file: 'm.csv',
      model: fluxDepthPro,
      promptOptional: false,
    });
    const text = problems.map(formatManifestProblem);
    expect(text).toContain(
      'm.csv:1:2 (guidence): "guidence" looks like a misspelling of guidance: rename it to guidance, or give the metadata column a clearly different name',
    );
    expect(text).toContain(
      'm.csv:1:3 (num_outputs): num_outputs is an input of black-forest-labs/flux-depth-dev, not of black-forest-labs/flux-depth-pro: remove the column or use --model black-forest-labs/flux-depth-dev',
    );
    expect(text).toContain('m.csv:1:6 (room): repeats column 4 ("room"): keep one');
    expect(text.some((line) => line.startsWith('m.csv:1: there is no control_image column'))).toBe(true);
    expect(text.some((line) => line.startsWith('m.csv:1: there is no prompt column'))).toBe(true);
    // Metadata names are the user's: "Room" and "room" are two columns.
    expect(text.some((line) => line.startsWith('m.csv:1:5'))).toBe(false);
  });

  it('recognises a file separated by semicolons', () => {
    const { problems } = planManifestColumns(record(1, 'id;control_image;prompt'), {
      file: 'm.csv',
      model: fluxDepthPro,
      promptOptional: false,
    });
    expect(problems[0]?.message).toContain('separated by semicolons: depthq reads comma-separated files');
  });

  it('guesses misspellings only when close and not too short', () => {
    expect(likelyMisspellingOf('seeds', ['seed', 'steps'])).toBe('seed');
    expect(likelyMisspellingOf('notes', ['seed', 'steps', 'style'])).toBeUndefined();
    expect(likelyMisspellingOf('ids', ['id'])).toBeUndefined();
  });
});

describe('rows', () => {
  const header = 'id|control_image|prompt|steps|room';

  it('builds one job with typed, normalised inputs, metadata and the default output key', () => {
    const layout = layoutOf(header);
    const row = manifestRowJobs(record(2, 'kitchen-1| controls/k1.png |A kitchen| 20.0 |kitchen'), contextOf(layout));
    expect(row.problems).toEqual([]);
    expect(row.normalisedCells).toBe(1);
    const [job] = row.jobs;
    expect(job).toMatchObject({
      run: 'run-1',
      rowId: 'kitchen-1',
      style: null,
      controlImage: { bucket: 'controls-bucket', key: 'controls/k1.png' },
      input: {
        prompt: 'A kitchen',
        steps: 20,
        seed: deriveSeed({ run: 'run-1', rowId: 'kitchen-1', style: null, reseed: 0 }),
      },
      output: { bucket: 'out-bucket', key: 'renders/run-1/kitchen-1.jpg' },
      metadata: { room: 'kitchen' },
      seedSource: 'derived',
    });
  });

  it('reports every problem of a row at once, each on its column', () => {
    const layout = layoutOf(header);
    const row = manifestRowJobs(record(7, '|s3:/x/y.png||1.5|x'), contextOf(layout));
    expect(row.jobs).toEqual([]);
    expect(row.problems.map(formatManifestProblem)).toEqual([
      'm.csv:7:1 (id): id is empty: every row needs a unique id (it names the job and its output)',
      'm.csv:7:2 (control_image): "s3:/x/y.png" is not an s3:// URI: write s3://bucket/key (two slashes)',
      'm.csv:7:4 (steps): steps must be a whole number from 15 to 50, got "1.5": write 1 or 2',
      'm.csv:7:3 (prompt): prompt is empty: write what to render, e.g. "a sunlit living room, oak floor" (or give a default with --set prompt=…)',
    ]);
  });

  it('refuses a row whose field count does not match the header', () => {
    const layout = layoutOf(header);
    expect(manifestRowJobs(record(3, 'a|b.png|p'), contextOf(layout)).problems[0]?.message).toContain(
      'has 3 fields but the header has 5 columns',
    );
    expect(manifestRowJobs(record(3, 'a|b.png|p|20|x|extra'), contextOf(layout)).problems[0]?.message).toContain(
      'quote fields that contain commas',
    );
    // Trailing empty fields (a spreadsheet's padding) are fine.
    expect(manifestRowJobs(record(3, 'a|b.png|p|20|x||'), contextOf(layout)).problems).toEqual([]);
  });

  it('names both lines of a duplicate id, even when the later row has other problems', () => {
    const context = contextOf(layoutOf(header));
    expect(manifestRowJobs(record(2, 'a|a.png|p|20|x'), context).problems).toEqual([]);
    const duplicate = manifestRowJobs(record(5, 'a|a.png|p|99|x'), context);
    expect(duplicate.problems.map(formatManifestProblem)).toContain(
      'm.csv:5:1 (id): id "a" is also on line 2: ids must be unique in a manifest; rename one of them',
    );
    expect(duplicate.problems).toHaveLength(2);
  });

  it('refuses ids and output keys that would escape their prefix', () => {
    const layout = layoutOf(`${header}|output_key`);
    const byId = manifestRowJobs(record(2, '../../etc|a.png|p|20|x|'), contextOf(layout));
    expect(byId.problems.map(formatManifestProblem)).toEqual([
      `m.csv:2:1 (id): id "../../etc" cannot be part of the output key ({run}/{style}/{id}.{ext}): it has a '..' segment, which would climb out of its prefix; use another id`,
    ]);
    const byKey = manifestRowJobs(record(3, 'b|a.png|p|20|x|../outside/b.jpg'), contextOf(layout));
    expect(byKey.problems).toHaveLength(1);
    expect(formatManifestProblem(byKey.problems[0] ?? { file: '', line: 0, message: '' })).toMatch(
      /^m\.csv:3:6 \(output_key\): output key ".*'\.\.' segment/,
    );
    const absolute = manifestRowJobs(record(4, 'c|a.png|p|20|x|/abs/c.jpg'), contextOf(layout));
    expect(absolute.problems[0]?.message).toContain("starts with '/'");
  });

  it('takes a per-row output key as a template and checks its extension against the output format', () => {
    const layout = layoutOf(`${header}|output_key|output_format`);
    const row = manifestRowJobs(record(2, 'a|a.png|p|20|x|shots/{id}.{ext}|png'), contextOf(layout));
    expect(row.jobs[0]?.output.key).toBe('renders/shots/a.png');
    const mismatch = manifestRowJobs(record(3, 'b|a.png|p|20|x|shots/b.png|jpg'), contextOf(layout));
    expect(mismatch.problems[0]?.message).toContain('ends in .png but output_format is jpg');
  });

  it('refuses two rows writing the same output key, naming the first line', () => {
    const layout = layoutOf(`${header}|output_key`);
    const context = contextOf(layout);
    expect(manifestRowJobs(record(2, 'a|a.png|p|20|x|same.{ext}'), context).problems).toEqual([]);
    const second = manifestRowJobs(record(4, 'b|b.png|p|20|x|same.{ext}'), context);
    expect(second.problems[0]?.message).toContain('output key "renders/same.jpg" is also the output of line 2');
  });

  it('lets a row cell beat its style, and the style beat --set defaults', () => {
    const layout = layoutOf('id|control_image|prompt|steps');
    const style: StyleDefinition = { name: 'modern', line: 2, prompt: undefined, inputs: { steps: 30, guidance: 7 } };
    const context = contextOf(layout, { styles: [style], defaults: { steps: 40, guidance: 9, safety_tolerance: 3 } });
    const withCell = manifestRowJobs(record(2, 'a|a.png|p|20'), context);
    expect(withCell.jobs[0]?.input).toMatchObject({ steps: 20, guidance: 7, safety_tolerance: 3 });
    const withoutCell = manifestRowJobs(record(3, 'b|b.png|p|'), context);
    expect(withoutCell.jobs[0]?.input).toMatchObject({ steps: 30 });
  });
});

describe('styles', () => {
  const stylesFile = (text: string) =>
    text
      .trim()
      .split('\n')
      .map((line, index) => record(index + 1, line));

  it('reads styles with prompt templates and per-style inputs', () => {
    const plan = planStyles(
      stylesFile('style|prompt|steps\nmodern|{prompt}, modern {room}|30\nnight|Night: {prompt}|'),
      's.csv',
      fluxDepthPro,
    );
    expect(plan.problems).toEqual([]);
    expect(plan.styles.map((style) => [style.name, style.inputs])).toEqual([
      ['modern', { steps: 30 }],
      ['night', {}],
    ]);
    expect(parsePromptTemplate('{{literal}} {prompt}')).toEqual([{ text: '{literal} ' }, { placeholder: 'prompt' }]);
  });

  it('reports bad names, duplicates, unknown columns, broken templates and bad inputs with lines', () => {
    const plan = planStyles(
      stylesFile('style|prompt|steps|guidence\nmo/dern|x|30|\nnight|{prompt|31|\nnight|y|100|\n|z||'),
      's.csv',
      fluxDepthPro,
    );
    const text = plan.problems.map(formatManifestProblem);
    expect(text).toEqual([
      's.csv:1:4 (guidence): is not a styles column: did you mean guidance?',
      `s.csv:2:1 (style): style "mo/dern" contains '/': a style is one folder of the output key; use '-' instead`,
      `s.csv:3:2 (prompt): prompt has a '{' that is not closed by '}': write '{{' for a literal brace`,
      's.csv:4:1 (style): style "night" is also defined on line 3: style names must be unique',
      's.csv:4:3 (steps): steps must be a whole number from 15 to 50, got 100',
      's.csv:5:1 (style): style is empty: name the style, e.g. modern',
    ]);
    expect([...plan.names].sort()).toEqual(['mo/dern', 'night']);
  });

  it('checks style placeholders against the manifest columns', () => {
    const plan = planStyles(stylesFile('style|prompt\na|{prompt} in {rom}'), 's.csv', fluxDepthPro);
    const layout = layoutOf('id|control_image|room', true);
    expect(styleTemplateProblems(plan.styles, 's.csv', layout, 'm.csv').map(formatManifestProblem)).toEqual([
      's.csv:2: style "a" uses {prompt}, but m.csv has no prompt column: add one, or remove {prompt}',
      's.csv:2: style "a" uses {rom}, but m.csv has no column named "rom": its columns are id, control_image, room',
    ]);
  });

  it('renders every row in every style: ids, seeds and output keys per style', () => {
    const plan = planStyles(
      stylesFile('style|prompt\nmodern|{prompt}, modern, {room}\nnight|{prompt} at night'),
      's.csv',
      fluxDepthPro,
    );
    const layout = layoutOf('id|control_image|prompt|room|style');
    const context = contextOf(layout, { styles: plan.styles, styleNames: plan.names, stylesFile: 's.csv' });
    const row = manifestRowJobs(record(2, 'r1|a.png|A hall|hall|'), context);
    expect(row.jobs.map((job) => [renderJobId(job), job.input.prompt, job.output.key])).toEqual([
      ['run-1.r1.modern', 'A hall, modern, hall', 'renders/run-1/modern/r1.jpg'],
      ['run-1.r1.night', 'A hall at night', 'renders/run-1/night/r1.jpg'],
    ]);
    expect(row.jobs[0]?.input.seed).not.toBe(row.jobs[1]?.input.seed);
    const only = manifestRowJobs(record(3, 'r2|b.png|A bath|bath|night'), context);
    expect(only.jobs.map((job) => job.style)).toEqual(['night']);
    const unknown = manifestRowJobs(record(4, 'r3|c.png|A yard|yard|noon'), context);
    expect(unknown.problems[0]?.message).toBe(
      'style "noon" is not in s.csv: write one of modern, night, or leave it empty for every style',
    );
  });

  it('needs {style} in a per-row output key when the row has several styles', () => {
    const plan = planStyles(stylesFile('style|prompt\na|{prompt}\nb|{prompt}'), 's.csv', fluxDepthPro);
    const layout = layoutOf('id|control_image|prompt|output_key');
    const context = contextOf(layout, { styles: plan.styles, styleNames: plan.names });
    const row = manifestRowJobs(record(2, 'r1|a.png|p|out/r1.{ext}'), context);
    expect(row.problems[0]?.message).toContain('would be the same for all 2 styles');
  });

  it('builds jobs for flux-depth-dev with its own inputs', () => {
    const planned = planManifestColumns(record(1, 'id|control_image|prompt|num_outputs'), {
      file: 'm.csv',
      model: fluxDepthDev,
      promptOptional: false,
    });
    expect(planned.problems).toEqual([]);
    const row = manifestRowJobs(record(2, 'a|a.png|p|2'), contextOf(planned.layout, { model: fluxDepthDev }));
    expect(row.jobs[0]?.input).toMatchObject({ num_outputs: 2, output_format: 'webp' });
    expect(row.jobs[0]?.output.key).toBe('renders/run-1/a.webp');
  });
});
