import { describe, expect, it } from 'vitest';
import {
  type DurabilityFacts,
  durabilityCheckOf,
  durabilityWarning,
  supportsWaitAof,
} from '../../src/queue/durability.js';

const debian: DurabilityFacts = { version: '7.0.15', appendOnly: 'no', appendFsync: 'everysec', connectedReplicas: 0 };

describe('durability of acknowledged writes', () => {
  it('knows WAITAOF from Redis 7.2 on', () => {
    expect(supportsWaitAof('7.0.15')).toBe(false);
    expect(supportsWaitAof('7.2.0')).toBe(true);
    expect(supportsWaitAof('8.0.1')).toBe(true);
    expect(supportsWaitAof('6.2.14')).toBe(false);
  });

  it('confirms through a replica when one is connected, through the AOF on 7.2+, else not at all', () => {
    expect(durabilityCheckOf({ ...debian, connectedReplicas: 1 })).toBe('replica');
    expect(durabilityCheckOf({ ...debian, appendOnly: 'yes', version: '7.2.4' })).toBe('aof');
    expect(durabilityCheckOf({ ...debian, appendOnly: 'yes' })).toBe('none');
    expect(durabilityCheckOf(debian)).toBe('none');
  });

  it('warns once when a crash could lose acknowledged writes, and says what to set', () => {
    expect(durabilityWarning(debian)).toMatch(/appendonly no \(no AOF\) and no replica.*appendfsync always/);
    expect(durabilityWarning({ ...debian, appendOnly: 'yes' })).toMatch(/appendfsync everysec and no replica/);
    expect(durabilityWarning({ ...debian, appendOnly: undefined })).toMatch(/CONFIG is disabled/);
  });

  it('stays quiet when every acknowledged write survives a crash', () => {
    expect(durabilityWarning({ ...debian, appendOnly: 'yes', appendFsync: 'always' })).toBeUndefined();
    expect(durabilityWarning({ ...debian, connectedReplicas: 2 })).toBeUndefined();
    expect(durabilityWarning({ ...debian, appendOnly: 'yes', version: '7.2.0' })).toBeUndefined();
  });
});
