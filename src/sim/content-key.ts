/**
 * The identity of "the same request" as the model sees it: the model plus its complete input, with every image URL
 * replaced by the sha256 of the bytes it served. A control image presigned twice (two different URLs) is the same
 * input; the same URL serving new bytes is not. Used for deterministic flagging and for counting inputs billed twice.
 */
import { inputFingerprint } from '../core/fingerprint.js';
import type { ModelInput } from '../core/models.js';

export function contentKeyOf(modelId: string, input: ModelInput, imageDigests: ReadonlyMap<string, string>): string {
  const content = Object.fromEntries(
    Object.entries(input).map(([name, value]) => {
      const digest = imageDigests.get(name);
      return [name, digest === undefined ? value : `sha256:${digest}`];
    }),
  );
  return inputFingerprint({ model: modelId, input: content });
}
