/**
 * The dashboard's pure parts: view models, the HTML template's escaping, the chart, the secrets scrub, who must log in,
 * and the small parsers and caches the routes rely on.
 */
import { describe, expect, it } from 'vitest';
import { parseBudgetField } from '../../src/dashboard/actions.js';
import { credentialsFor, isLoopbackHost } from '../../src/dashboard/auth.js';
import { runPageOfJob } from '../../src/dashboard/bull-board.js';
import { html } from '../../src/dashboard/pages/html.js';
import { runCard } from '../../src/dashboard/pages/run-card.js';
import { spanText, throughputChart } from '../../src/dashboard/pages/throughput-chart.js';
import { type RunDetail, withFreshCounts } from '../../src/dashboard/run-data.js';
import {
  barSegmentsOf,
  CompletionTally,
  FailureTally,
  LatestOutputs,
  runCardOf,
  scrubJson,
  scrubSecrets,
  throughputBars,
} from '../../src/dashboard/run-views.js';
import { ThumbnailCache } from '../../src/dashboard/thumbnails.js';
import type { ResultRow } from '../../src/ledger/run-ledger.js';
import type { RunStatus, StateCounts } from '../../src/runs/run-status.js';

const counts = (partial: Partial<StateCounts>): StateCounts => {
  const base = { waiting: 0, running: 0, succeeded: 0, failed: 0, flagged: 0, parked: 0, canceled: 0, ...partial };
  const total = Object.values(base).reduce((sum, value) => sum + value, 0);
  return { ...base, total };
};

function row(partial: Partial<ResultRow>): ResultRow {
  return { status: 'succeeded', rowId: 'r1', style: 'day', ...partial };
}

function status(partial: Partial<RunStatus> = {}): RunStatus {
  return {
    run: 'night-run',
    state: 'active',
    counts: counts({ succeeded: 3, failed: 1, running: 2, waiting: 4 }),
    money: { budget: 2_000_000, reserved: 100_000, spent: 150_000, possiblyBilled: 0 },
    observedAtMs: Date.parse('2026-01-01T00:10:00Z'),
    meta: {
      createdAt: '2026-01-01T00:00:00.000Z',
      model: 'black-forest-labs/flux-depth-pro',
      budgetMicros: 2_000_000,
      manifest: { name: 'm.csv', sha256: '0'.repeat(64) },
      output: { bucket: 'b', prefix: '', keyTemplate: '{run}/{id}.{ext}' },
      defaults: {},
    },
    parkedByReason: {},
    imagesPerMinute: 6,
    etaSeconds: 60,
    ...partial,
  };
}

describe('run card view', () => {
  it('gives the bar one segment per state present, ended states first, shares of all jobs', () => {
    expect(barSegmentsOf(counts({ succeeded: 1, waiting: 2, failed: 1 }))).toEqual([
      { state: 'succeeded', count: 1, percent: 25 },
      { state: 'failed', count: 1, percent: 25 },
      { state: 'waiting', count: 2, percent: 50 },
    ]);
    expect(barSegmentsOf(counts({}))).toEqual([]);
  });

  it('says what `depthq status` says: spent of budget, rate, ETA, share ended', () => {
    const card = runCardOf(status());
    expect(card).toMatchObject({
      percentEnded: 40,
      spent: '$0.15',
      budget: '$2.00',
      rate: '6.0 images/min',
      eta: 'ETA 1 min 00 s',
      ended: false,
    });
    expect(runCardOf(status({ money: { ...status().money, budget: null } })).budget).toBe('unlimited');
  });

  it('shows a pause cause without the query string of any URL in it', () => {
    const card = runCardOf(
      status({
        state: 'paused',
        pause: { reason: 'account', message: 'refused https://api.example/x?token=abc123', at: '2026-01-01T00:00:00Z' },
      }),
    );
    expect(card.pauseNote).toContain('https://api.example/x?…');
    expect(card.pauseNote).not.toContain('abc123');
  });

  it('escapes what comes from a manifest or a provider', () => {
    const markup = runCard(runCardOf(status({ run: 'run-1' })), { link: true }).text;
    expect(markup).toContain('href="/runs/run-1"');
    expect(html`<p>${'<script>"x"</script>'}</p>`.text).toBe('<p>&lt;script&gt;&quot;x&quot;&lt;/script&gt;</p>');
    expect(html`<ul>${['a&b', html`<li>kept</li>`]}</ul>`.text).toBe('<ul>a&amp;b<li>kept</li></ul>');
  });
});

describe('a scanned run with newer counts', () => {
  const scanned: RunDetail = {
    status: status({ parkedByReason: { budget: 2 }, counts: counts({ succeeded: 3, parked: 2, waiting: 5 }) }),
    card: runCardOf(status()),
    failures: [],
    throughput: [],
    gallery: [],
  };

  it('takes counts, money and state from the newer reading and the rate from the scan', () => {
    const fresh = withFreshCounts(scanned, {
      run: 'night-run',
      state: 'paused',
      pause: { reason: 'account', message: 'no credit', at: '2026-01-01T00:10:00Z' },
      counts: counts({ succeeded: 6, waiting: 4 }),
      money: { budget: 2_000_000, reserved: 0, spent: 300_000, possiblyBilled: 0 },
      observedAtMs: scanned.status.observedAtMs + 5000,
    });
    expect(fresh.card).toMatchObject({
      state: 'paused',
      spent: '$0.30',
      rate: '6.0 images/min',
      eta: 'ETA – (paused)',
    });
    expect(fresh.card.counts.succeeded).toBe(6);
    expect(fresh.status.parkedByReason).toEqual({});
    expect(fresh.card.pauseNote).toContain('no credit');
  });

  it('keeps the scan when the counts are not newer', () => {
    const older = { ...scanned.status, observedAtMs: scanned.status.observedAtMs - 1 };
    expect(withFreshCounts(scanned, older)).toBe(scanned);
  });
});

describe('secrets', () => {
  it('cuts presigned signatures and credentials out of text and JSON', () => {
    const url = 'https://bucket.s3.amazonaws.com/k.png?X-Amz-Signature=abc&X-Amz-Credential=AKIA';
    expect(scrubSecrets(`fetch ${url} failed`)).toBe('fetch https://bucket.s3.amazonaws.com/k.png?… failed');
    expect(scrubSecrets('redis://user:pw@host')).toBe('redis://user:pw@host');
    expect(JSON.stringify(scrubJson({ a: [{ url }], n: 3, ok: true, none: null }))).not.toContain('Signature');
  });
});

describe('failures by reason', () => {
  it('counts failed and flagged rows per reason, most frequent first, with one scrubbed example', () => {
    const tally = new FailureTally();
    tally.add(row({ status: 'failed', reason: 'fatal', error: 'control image missing' }));
    tally.add(row({ status: 'failed', reason: 'fatal', error: 'other' }));
    tally.add(row({ status: 'flagged', error: 'NSFW at https://x.example/p?sig=1' }));
    tally.add(row({ status: 'succeeded' }));
    tally.add(row({ status: 'canceled', reason: 'canceled' }));
    expect(tally.groups()).toEqual([
      { reason: 'fatal', status: 'failed', count: 2, example: 'control image missing' },
      { reason: 'flagged', status: 'flagged', count: 1, example: 'NSFW at https://x.example/p?…' },
    ]);
  });
});

describe('throughput', () => {
  const at = (iso: string) => row({ finishedAt: iso });

  it('counts succeeded rows per 10 s and draws a short run in 10-second bars up to now', () => {
    const tally = new CompletionTally();
    for (const iso of ['2026-01-01T00:00:01Z', '2026-01-01T00:00:09Z', '2026-01-01T00:00:31Z']) tally.add(at(iso));
    tally.add(row({ status: 'failed', finishedAt: '2026-01-01T00:00:02Z' }));
    const bars = throughputBars(tally.perSlot(), Date.parse('2026-01-01T00:00:45Z'));
    expect(bars.map((bar) => bar.images)).toEqual([2, 0, 0, 1, 0]);
    expect(bars[0]).toMatchObject({ widthMs: 10_000, perMinute: 12 });
  });

  it('widens bars for a long run so there are at most maxBars', () => {
    const tally = new CompletionTally();
    tally.add(at('2026-01-01T00:00:00Z'));
    tally.add(at('2026-01-02T00:00:00Z'));
    const bars = throughputBars(tally.perSlot(), 0, 60);
    expect(bars.length).toBeLessThanOrEqual(60);
    expect(bars[0]?.widthMs).toBe(30 * 60_000);
    expect(bars.reduce((sum, bar) => sum + bar.images, 0)).toBe(2);
    expect(throughputBars(new Map(), 0)).toEqual([]);
  });

  it('draws the bars as SVG with a label, and says so when nothing finished', () => {
    const svg = throughputChart([
      { startMs: 0, widthMs: 60_000, images: 3, perMinute: 3 },
      { startMs: 60_000, widthMs: 60_000, images: 6, perMinute: 6 },
    ]).text;
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(2);
    expect(svg).toContain('one bar per 1 min, peak 6');
    expect(throughputChart([]).text).toContain('data-chart="empty"');
    expect([spanText(10_000), spanText(300_000), spanText(7_200_000), spanText(86_400_000)]).toEqual([
      '10 s',
      '5 min',
      '2 h',
      '1 d',
    ]);
  });
});

describe('latest outputs', () => {
  it('keeps the newest succeeded rows with an output, newest first', () => {
    const latest = new LatestOutputs(2);
    latest.add('a', row({ outputKey: 'a.jpg', finishedAt: '2026-01-01T00:00:01Z', seed: 1, costMicros: 50_000 }));
    latest.add('b', row({ outputKey: 'b.jpg', finishedAt: '2026-01-01T00:00:03Z' }));
    latest.add('c', row({ outputKey: 'c.jpg', finishedAt: '2026-01-01T00:00:02Z' }));
    latest.add('d', row({ status: 'failed', finishedAt: '2026-01-01T00:00:09Z' }));
    latest.add('e', row({ finishedAt: '2026-01-01T00:00:09Z' }));
    expect(latest.items().map((item) => item.jobId)).toEqual(['b', 'c']);
    const one = new LatestOutputs(1);
    one.add('a', row({ outputKey: 'a.jpg', finishedAt: '2026-01-01T00:00:01Z', seed: 7, costMicros: 50_000 }));
    expect(one.items()).toEqual([
      { jobId: 'a', rowId: 'r1', style: 'day', seed: 7, cost: '$0.05', finishedAt: '2026-01-01T00:00:01Z' },
    ]);
  });
});

describe('who must log in', () => {
  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.com']) expect(isLoopbackHost(host)).toBe(false);
  });

  it('refuses a non-loopback host without both credentials, and one credential without the other', () => {
    const none = { user: undefined, password: undefined };
    expect(credentialsFor('127.0.0.1', none)).toBeUndefined();
    expect(() => credentialsFor('0.0.0.0', none)).toThrow(/refusing to listen on 0\.0\.0\.0 without credentials/);
    expect(credentialsFor('0.0.0.0', { user: 'ops', password: 'pw' })).toEqual({ user: 'ops', password: 'pw' });
    expect(credentialsFor('127.0.0.1', { user: 'ops', password: 'pw' })).toEqual({ user: 'ops', password: 'pw' });
    expect(() => credentialsFor('127.0.0.1', { user: 'ops', password: undefined })).toThrow(
      /DASHBOARD_USER is set without DASHBOARD_PASSWORD/,
    );
  });
});

describe('small parts', () => {
  it('parses a budget as the CLI does', () => {
    expect(parseBudgetField(' 12.5 ')).toBe(12_500_000);
    expect(parseBudgetField('unlimited')).toBeNull();
    expect(() => parseBudgetField('-3')).toThrow(/not a dollar amount/);
  });

  it("links a bull-board job to its run's page", () => {
    expect(runPageOfJob({ run: 'night.run' })).toBe('/runs/night.run');
    expect(runPageOfJob({})).toBeUndefined();
    expect(runPageOfJob(null)).toBeUndefined();
  });

  it('forgets the least recently used thumbnail first', () => {
    const cache = new ThumbnailCache(2);
    cache.set('a', Buffer.from('a'));
    cache.set('b', Buffer.from('b'));
    cache.get('a');
    cache.set('c', Buffer.from('c'));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.toString()).toBe('a');
    expect(cache.size).toBe(2);
  });
});
