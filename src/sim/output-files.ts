/**
 * Rendered outputs, held in memory and served by the simulator itself at `/files/{predictionId}/{name}` — the stand-in
 * for replicate.delivery. Removed at the prediction's retention deadline, after which their URLs answer 404.
 */

export interface OutputFile {
  readonly name: string;
  readonly bytes: Buffer;
  readonly contentType: string;
  /** The size the file is served at: `bytes`, then zero bytes up to this (the `outputMinBytes` option). */
  readonly servedBytes: number;
}

export class OutputFileStore {
  private readonly files = new Map<string, Map<string, OutputFile>>();

  put(predictionId: string, outputs: readonly OutputFile[]): void {
    this.files.set(predictionId, new Map(outputs.map((file) => [file.name, file])));
  }

  get(predictionId: string, name: string): OutputFile | undefined {
    return this.files.get(predictionId)?.get(name);
  }

  remove(predictionId: string): void {
    this.files.delete(predictionId);
  }

  /** Bytes held, for the stats endpoint (a long simulation should show memory being released). */
  totalBytes(): number {
    let total = 0;
    for (const outputs of this.files.values()) for (const file of outputs.values()) total += file.bytes.length;
    return total;
  }
}

export function outputFileName(index: number, format: string): string {
  return `output-${index}.${format}`;
}
