export * from './control-images/index.js';
export * from './redis.js';
export * from './s3.js';
export * from './stack.js';
