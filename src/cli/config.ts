import type { Command } from 'commander';
import { describeConfig, loadConfig } from '../config/index.js';

const environmentHelp = `
Environment variables (empty means unset):
  REDIS_URL             Redis that holds the queue and the run ledger   (default redis://127.0.0.1:6379)
  REPLICATE_API_TOKEN   Replicate API token; never logged or stored       (required by commands that call the API)
  REPLICATE_BASE_URL    Replicate API base URL, or a depthq simulator     (default https://api.replicate.com/v1)
  S3_BUCKET             bucket of control images and outputs            (required by commands that touch S3)
  S3_ENDPOINT           S3-compatible endpoint (MinIO, s3rver)          (default: AWS)
  S3_FORCE_PATH_STYLE   true for path-style URLs                        (default: true when S3_ENDPOINT is set)
  AWS_REGION            S3 region                                       (default us-east-1)
  DEPTHQ_PREFIX         namespace of depthq's Redis keys                (default depthq)
  LOG_LEVEL             fatal|error|warn|info|debug|trace|silent        (default info)
AWS credentials come from the AWS SDK's own chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, roles).`;

export function registerConfigCommand(program: Command): void {
  program
    .command('config')
    .description('validate the environment and print the effective configuration (secrets hidden)')
    .option('--json', 'print JSON instead of aligned text')
    .addHelpText('after', environmentHelp)
    .action((options: { json?: boolean }) => {
      const described = describeConfig(loadConfig());
      if (options.json) {
        process.stdout.write(`${JSON.stringify(described, null, 2)}\n`);
        return;
      }
      const width = Math.max(...Object.keys(described).map((name) => name.length));
      for (const [name, value] of Object.entries(described)) {
        process.stdout.write(`${name.padEnd(width)}  ${value}\n`);
      }
    });
}
