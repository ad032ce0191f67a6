import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/core/redact.js';

describe('redactUrl', () => {
  it('drops a presigned query string', () => {
    expect(redactUrl('http://127.0.0.1:9000/b/k.png?X-Amz-Signature=abc&X-Amz-Credential=x')).toBe(
      'http://127.0.0.1:9000/b/k.png?…',
    );
  });
  it('hides a password and keeps the user', () => {
    expect(redactUrl('redis://default:hunter2@redis:6379/0')).toBe('redis://default:***@redis:6379/0');
    expect(redactUrl('redis://:hunter2@redis:6379')).toBe('redis://:***@redis:6379');
  });
  it('leaves a plain URL alone', () => {
    expect(redactUrl('https://api.replicate.com/v1/predictions/abc')).toBe(
      'https://api.replicate.com/v1/predictions/abc',
    );
  });
});
