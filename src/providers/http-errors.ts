/**
 * What a call to the model API ended with, as data: the pipeline classifies these with `classifyFailure`, it never
 * parses message strings. Both are thrown by the transport only after its own retries are spent (or, for a create, at
 * once: a create is never re-sent blindly).
 */
import { detailOf, type FailureFacts } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { ProviderCallError } from './provider.js';

/** The server answered with a non-2xx status. `body` is the parsed JSON (RFC 7807 for Replicate) or the raw text. */
export class ProviderHttpError extends ProviderCallError {
  override readonly name = 'ProviderHttpError';

  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly body: unknown,
    readonly retryAfterHeader: string | null,
  ) {
    super(`${method} ${redactUrl(url)} answered ${status}: ${detailOf(body) ?? 'no details'}`);
  }

  get facts(): FailureFacts {
    return { httpStatus: this.status, body: this.body, retryAfterHeader: this.retryAfterHeader };
  }

  /** A 5xx may come from a proxy after the prediction was created; only a 4xx says nothing was. */
  get nothingCreated(): boolean {
    return this.status >= 400 && this.status < 500;
  }
}

/** No answer: connection refused or reset, DNS failure, or the attempt's timeout. For a create, the outcome is unknown. */
export class ProviderNetworkError extends ProviderCallError {
  override readonly name = 'ProviderNetworkError';

  constructor(
    readonly method: string,
    readonly url: string,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(`${method} ${redactUrl(url)} got no answer (${code})`, options);
  }

  get facts(): FailureFacts {
    return { networkErrorCode: this.code };
  }

  get nothingCreated(): boolean {
    return false;
  }
}
