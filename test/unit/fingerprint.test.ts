import { describe, expect, it } from 'vitest';
import { canonicalJson, inputFingerprint } from '../../src/core/fingerprint.js';

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: true, y: null }], c: 'x' }, u: undefined })).toBe(
      '{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}',
    );
  });
  it('keeps values distinct that only look alike', () => {
    expect(canonicalJson({ steps: 20 })).not.toBe(canonicalJson({ steps: '20' }));
    expect(canonicalJson([undefined])).toBe('[null]');
  });
});

describe('inputFingerprint', () => {
  it('is equal for equal inputs in any key order', () => {
    const sent = { prompt: 'dusk', seed: 7, control_image: 'https://s3/x.png?sig=1' };
    const listed = { seed: 7, control_image: 'https://s3/x.png?sig=1', prompt: 'dusk' };
    expect(inputFingerprint(sent)).toBe(inputFingerprint(listed));
    expect(inputFingerprint(sent)).toMatch(/^[0-9a-f]{64}$/);
  });
  it('differs when any value differs, including the object a URL names', () => {
    const sent = { prompt: 'dusk', seed: 7, control_image: 'https://s3/bucket/x.png?sig=1' };
    expect(inputFingerprint({ ...sent, seed: 8 })).not.toBe(inputFingerprint(sent));
    expect(inputFingerprint({ ...sent, control_image: 'https://s3/bucket/y.png?sig=1' })).not.toBe(
      inputFingerprint(sent),
    );
    expect(inputFingerprint({ ...sent, control_image: 'https://s3/other/x.png?sig=1' })).not.toBe(
      inputFingerprint(sent),
    );
  });
  it('matches a control image by bucket and key, whatever its signature or how it was echoed', () => {
    const sent = { prompt: 'dusk', seed: 7, control_image: 'https://s3/bucket/x.png?X-Amz-Signature=ab&X-Amz-Date=1' };
    const echoed = { ...sent, control_image: 'https://s3/bucket/x.png?X-Amz-Date=1&X-Amz-Signature=ab%3D' };
    expect(inputFingerprint(echoed)).toBe(inputFingerprint(sent));
    expect(inputFingerprint({ ...sent, control_image: 'https://s3/bucket/x.png' })).toBe(inputFingerprint(sent));
    // Only URLs lose their query: a prompt with a question mark is compared whole.
    expect(inputFingerprint({ ...sent, prompt: 'dusk?' })).not.toBe(inputFingerprint(sent));
  });
});
