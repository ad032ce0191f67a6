/**
 * The part of s3rver 3.7.1 (CommonJS, no types of its own) that depthq uses. S3rver is a Koa application; only the
 * members below are declared. See node_modules/s3rver/lib/s3rver.js.
 */
declare module 's3rver' {
  import type { IncomingMessage, Server, ServerResponse } from 'node:http';
  import type { AddressInfo } from 'node:net';

  namespace S3rver {
    interface BucketConfig {
      readonly name: string;
      /** CORS or website configuration documents (XML). */
      readonly configs?: ReadonlyArray<string | Buffer>;
    }

    interface Options {
      /** @defaultValue 'localhost' */
      readonly address?: string;
      /** 0 picks a free port. @defaultValue 4568 */
      readonly port?: number;
      readonly key?: string | Buffer;
      readonly cert?: string | Buffer;
      /** @defaultValue false */
      readonly silent?: boolean;
      /** @defaultValue 'amazonaws.com' */
      readonly serviceEndpoint?: string;
      /** Where buckets and objects are stored on disk. @defaultValue os.tmpdir()/s3rver */
      readonly directory?: string;
      /** @defaultValue false */
      readonly resetOnClose?: boolean;
      /** @defaultValue false */
      readonly allowMismatchedSignatures?: boolean;
      /** @defaultValue true */
      readonly vhostBuckets?: boolean;
      readonly configureBuckets?: readonly BucketConfig[];
    }

    type RequestListener = (request: IncomingMessage, response: ServerResponse) => Promise<void>;
  }

  class S3rver {
    constructor(options?: S3rver.Options);
    static readonly defaultOptions: Readonly<S3rver.Options>;
    /** Set by run(). */
    httpServer?: Server;
    /** Creates the configured buckets, then listens. A port already taken is thrown as an *uncaught* exception. */
    run(): Promise<AddressInfo>;
    /** Creates the buckets of `configureBuckets` in the store (run() calls it first). */
    configureBuckets(): Promise<void>;
    /** The Koa request listener, for a server the caller creates and owns. */
    callback(): S3rver.RequestListener;
    getMiddleware(): S3rver.RequestListener;
    close(): Promise<void>;
    reset(): void;
  }

  export = S3rver;
}
