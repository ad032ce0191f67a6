export * from './control-images.js';
export * from './redis.js';
export * from './s3.js';
export * from './stack.js';
