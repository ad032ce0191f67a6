/**
 * The identity of "the same request" as the model sees it: the model plus its complete input, with every image URL
 * replaced by the sha256 of the bytes it served. A control image presigned twice (two different URLs) is the same
 * input; the same URL serving new bytes is not. Used for deterministic flagging and for counting inputs billed twice.
 */
import { createHash } from 'node:crypto';
import type { ModelInput } from '../core/models.js';

export function contentKeyOf(modelId: string, input: ModelInput, imageDigests: ReadonlyMap<string, string>): string {
  const entries = Object.keys(input)
    .sort()
    .map((name) => {
      const digest = imageDigests.get(name);
      return [name, digest === undefined ? input[name] : `sha256:${digest}`] as const;
    });
  return createHash('sha256')
    .update(JSON.stringify([modelId, entries]))
    .digest('hex');
}
