/** `depthq` — the command-line entry point (bin/depthq.js imports it): the commands are in program.ts. */
import { runCli } from './program.js';

const exitCode = await runCli(process.argv);
// Set, not process.exit(): output still being written to a pipe is flushed before the process ends.
if (exitCode !== 0) process.exitCode = exitCode;
