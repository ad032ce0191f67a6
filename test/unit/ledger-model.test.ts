import { describe, expect, it } from 'vitest';
import { predictionFieldsOf } from '../../src/ledger/ledger-model.js';

describe('predictionFieldsOf', () => {
  it('lists each prediction id once, in the order first seen, the latest as predictionId', () => {
    expect(predictionFieldsOf(['p1', 'p2'], ['p2', 'p3'], ['p1'])).toEqual({
      predictionId: 'p3',
      predictionIds: ['p1', 'p2', 'p3'],
    });
    expect(predictionFieldsOf(undefined, ['p4'])).toEqual({ predictionId: 'p4', predictionIds: ['p4'] });
  });

  it('leaves both fields out when no list knows an id', () => {
    expect(predictionFieldsOf(undefined, [])).toEqual({});
  });
});
