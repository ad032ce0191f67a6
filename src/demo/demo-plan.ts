/**
 * What the demo renders: its styles, its run id, and the render jobs of control images × styles. Built with the same
 * `buildRenderJob` a manifest row goes through, so the demo exercises the real job payload (derived seeds, complete
 * model input, output keys) rather than a shortcut.
 *
 * Pure: the clock and the images are passed in.
 */
import { fluxDepthPro } from '../core/models.js';
import { buildRenderJob, type RenderJob, renderJobIdOf } from '../core/render-job.js';

export interface DemoStyle {
  /** A slug: the job's style, the output key's folder and the local folder in the demo output. */
  readonly id: string;
  /** How the contact sheet heads the column. */
  readonly label: string;
  /**
   * Prepended to each image's description. It comes first on purpose: the simulator picks its palette from the first
   * mood word of the prompt, and the descriptions name materials ("brick", "concrete") that would otherwise win.
   */
  readonly prompt: string;
}

export const DEMO_STYLES: readonly DemoStyle[] = [
  {
    id: 'scandinavian-daylight',
    label: 'Scandinavian, soft daylight',
    prompt: 'Scandinavian interior/exterior, soft daylight, pale oak and white plaster, photorealistic visualisation',
  },
  {
    id: 'night-warm-lights',
    label: 'Night, warm lights',
    prompt: 'Night, warm lights glowing in the windows, deep blue sky, photorealistic visualisation',
  },
];

/** What the demo may spend: exactly what its largest run (20 images × 2 styles × $0.05) costs, so every run fits. */
export const DEMO_BUDGET_USD = '2.00';
export const DEMO_MODEL = fluxDepthPro;
/** 15 is flux-depth-pro's minimum: the fewest steps keeps a real model's bill and time lowest, and the demo fast. */
export const DEMO_STEPS = 15;
export const CONTROL_PREFIX = 'controls';
export const OUTPUT_PREFIX = 'renders';

/** A fresh run id per start: `demo-20250131-142503`, in UTC so two machines name the same moment alike. */
export function demoRunId(now: Date): string {
  const iso = now.toISOString();
  return `demo-${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}`;
}

export interface DemoImage {
  readonly name: string;
  readonly description: string;
  readonly contentType: string;
}

export function controlKeyOf(run: string, image: Pick<DemoImage, 'name' | 'contentType'>): string {
  return `${CONTROL_PREFIX}/${run}/${image.name}.${image.contentType === 'image/jpeg' ? 'jpg' : 'png'}`;
}

export interface PlannedJob {
  readonly jobId: string;
  readonly image: DemoImage;
  readonly style: DemoStyle;
  readonly job: RenderJob;
}

export function planDemoJobs(args: {
  readonly run: string;
  readonly bucket: string;
  readonly images: readonly DemoImage[];
  readonly styles?: readonly DemoStyle[];
}): PlannedJob[] {
  const planned: PlannedJob[] = [];
  for (const image of args.images) {
    for (const style of args.styles ?? DEMO_STYLES) {
      const job = buildRenderJob({
        run: args.run,
        rowId: image.name,
        style: style.id,
        model: DEMO_MODEL.id,
        controlImage: { bucket: args.bucket, key: controlKeyOf(args.run, image) },
        // No seed: each job gets the seed derived from (run, row, style), recorded with its output.
        input: { prompt: `${style.prompt}. ${image.description}`, steps: DEMO_STEPS },
        output: { bucket: args.bucket, prefix: OUTPUT_PREFIX },
        metadata: { source: 'depthq demo' },
      });
      planned.push({ jobId: renderJobIdOf(job), image, style, job });
    }
  }
  return planned;
}
