// A job's resource use over its life, as uPlot charts: CPU (share of one CPU, and the quota), memory
// (in use, the peak the kernel recorded, and the limit drawn as a line), disk rates, processes
// (and their limit). Points are the UI server's samples while the page is open, and the final
// stats when the job ends; a job that ended before anyone sampled it shows its final stats over
// its whole run (the peak and the average).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import type { UiJob, UiSample } from '../../src/cli/ui/protocol';
import { h } from './dom';
import { averageCpuPercent, formatBytes, formatPercent, formatRate, isFinished } from './format';

interface SeriesSpec {
  label: string;
  stroke: string;
  dash?: number[];
  /** Left out of the scale's range (a limit far above the use would flatten it): drawn when in range. */
  outOfRange?: boolean;
  value(sample: UiSample, job: UiJob): number | null;
}

interface ChartSpec {
  name: string;
  title: string;
  format(value: number): string;
  /** The least top of the scale: nothing but noise looks like a mountain. */
  minTop: number;
  series: SeriesSpec[];
}

const CHARTS: ChartSpec[] = [
  {
    name: 'cpu',
    title: 'CPU (% of one CPU)',
    format: formatPercent,
    minTop: 10,
    series: [
      { label: 'used', stroke: '#4f9cf0', value: (sample) => sample.cpuPercent },
      { label: 'quota', stroke: '#e5536b', dash: [6, 4], value: (_, job) => (job.limits.cpu === null ? null : job.limits.cpu * 100) },
    ],
  },
  {
    name: 'memory',
    title: 'Memory',
    format: formatBytes,
    minTop: 1 << 20,
    series: [
      { label: 'in use', stroke: '#58c48b', value: (sample) => sample.memoryBytes },
      { label: 'peak', stroke: '#b48ee8', value: (sample) => sample.memoryPeakBytes },
      { label: 'limit', stroke: '#e5536b', dash: [6, 4], value: (_, job) => job.limits.memoryBytes },
      { label: 'high', stroke: '#e0b030', dash: [2, 4], value: (_, job) => job.limits.memoryHighBytes },
    ],
  },
  {
    name: 'io',
    title: 'Disk',
    format: formatRate,
    minTop: 10_000,
    series: [
      { label: 'read', stroke: '#4f9cf0', value: (sample) => sample.ioReadBytesPerSecond },
      { label: 'write', stroke: '#e0b030', value: (sample) => sample.ioWriteBytesPerSecond },
    ],
  },
  {
    name: 'pids',
    title: 'Processes',
    format: (value) => String(Math.round(value)),
    minTop: 4,
    series: [
      { label: 'processes', stroke: '#58c48b', value: (sample) => sample.pids },
      { label: 'limit', stroke: '#e5536b', dash: [6, 4], outOfRange: true, value: (_, job) => job.limits.pids },
    ],
  },
];

/** Samples to draw: the server's, or for a job nobody sampled while it ran, its final stats over its run. */
export function pointsFor(job: UiJob, samples: readonly UiSample[]): UiSample[] {
  if (samples.length >= 2 || !isFinished(job) || job.stats === null || job.startedAt === null || job.finishedAt === null) return [...samples];
  const seconds = (job.durationMs ?? 0) / 1000;
  const total = (key: 'readBytes' | 'writeBytes') => job.stats!.io.reduce((sum, io) => sum + io[key], 0);
  const whole: Omit<UiSample, 'time'> = {
    cpuPercent: averageCpuPercent(job),
    memoryBytes: 0,
    memoryPeakBytes: job.stats.memoryPeakBytes,
    pids: 0,
    ioReadBytesPerSecond: seconds > 0 ? total('readBytes') / seconds : null,
    ioWriteBytesPerSecond: seconds > 0 ? total('writeBytes') / seconds : null,
  };
  return [
    { ...whole, time: Date.parse(job.startedAt) },
    { ...whole, time: Date.parse(job.finishedAt) },
  ];
}

export class JobCharts {
  readonly element: HTMLElement;
  readonly #plots: { spec: ChartSpec; plot: uPlot; box: HTMLElement }[] = [];
  readonly #resize: ResizeObserver;
  #job: UiJob;
  #samples: UiSample[] = [];

  constructor(job: UiJob) {
    this.#job = job;
    this.element = h('section', { class: 'charts' });
    for (const spec of CHARTS) {
      const box = h('div', { class: 'chart', 'data-chart': spec.name });
      this.element.append(box);
      const plot = new uPlot(
        {
          title: spec.title,
          width: 480,
          height: 200,
          series: [{}, ...spec.series.map((series) => ({ label: series.label, stroke: series.stroke, width: 2, ...(series.dash === undefined ? {} : { dash: series.dash }), auto: series.outOfRange !== true, value: (_: uPlot, value: number | null) => (value === null ? '-' : spec.format(value)) }))],
          axes: [{ stroke: '#9aa0a6', grid: { stroke: '#2a2e35' } }, { stroke: '#9aa0a6', grid: { stroke: '#2a2e35' }, size: 70, values: (_: uPlot, splits: number[]) => splits.map((value) => spec.format(value)) }],
          scales: { y: { range: (_: uPlot, min: number, max: number) => [Math.min(0, min), Math.max(spec.minTop, max * 1.1)] } },
        },
        this.#data(spec),
        box,
      );
      // The plotted data, for scripts that check what the charts show (the tests read it).
      Object.assign(box, { uplot: plot });
      this.#plots.push({ spec, plot, box });
    }
    this.#resize = new ResizeObserver(() => this.#fit());
    this.#resize.observe(this.element);
  }

  dispose(): void {
    this.#resize.disconnect();
    for (const { plot } of this.#plots) plot.destroy();
  }

  set(job: UiJob, samples: readonly UiSample[]): void {
    this.#job = job;
    this.#samples = [...samples];
    this.#redraw();
  }

  add(sample: UiSample): void {
    this.#samples.push(sample);
    this.#redraw();
  }

  updateJob(job: UiJob): void {
    this.#job = job;
    this.#redraw();
  }

  #redraw(): void {
    for (const { spec, plot } of this.#plots) plot.setData(this.#data(spec));
  }

  #data(spec: ChartSpec): uPlot.AlignedData {
    const points = pointsFor(this.#job, this.#samples);
    return [points.map((point) => point.time / 1000), ...spec.series.map((series) => points.map((point) => series.value(point, this.#job)))];
  }

  #fit(): void {
    for (const { plot, box } of this.#plots) {
      const width = Math.max(280, Math.floor(box.clientWidth));
      if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: 200 });
    }
  }
}
