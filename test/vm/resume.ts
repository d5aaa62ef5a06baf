// How run-v2.ts recovers from a stalled VM: the file runs from the one it stalled in are done again
// in a fresh VM, once. Apart from run-v2.ts so that its rules can be tested without booting a VM.

/** What one VM gave: the results of the file runs it finished, in order, and whether it stalled. */
export interface BootReport<R> {
  results: readonly R[];
  /** Why it was killed as stalled (qemu.ts: VmOutcome.stalled); undefined if it did not stall. */
  stalled?: string;
}

export interface ResumeOutcome<R, B> {
  results: R[];
  /** One sentence per stall, for the report. */
  notes: string[];
  stalls: number;
  /** The last VM's own report. */
  last: B;
  /** The last VM stalled too: a failure, whatever the results say. */
  failed: boolean;
}

/**
 * Boots VMs until one ends without stalling, at most `maxBoots`: each starts at the first file run
 * (`resumeAt`, an index into `runs`) the ones before it did not finish. A stall after the last file
 * run (in the runner's own cleanup) is not rerun: it fails.
 */
export async function bootWithResume<R, B extends BootReport<R>>(
  runs: readonly { layout: string; file: string }[],
  maxBoots: number,
  boot: (attempt: number, resumeAt: number) => Promise<B>,
  log: (line: string) => void,
): Promise<ResumeOutcome<R, B>> {
  const results: R[] = [];
  const notes: string[] = [];
  let stalls = 0;
  for (let attempt = 1; ; attempt++) {
    const last = await boot(attempt, results.length);
    results.push(...last.results);
    if (last.stalled === undefined) return { results, notes, stalls, last, failed: false };
    stalls++;
    if (results.length >= runs.length) {
      notes.push(`VM ${attempt} stalled after its last file run: ${last.stalled}`);
      return { results, notes, stalls, last, failed: true };
    }
    const during = runs[results.length]!;
    const note = `VM ${attempt} stalled during ${during.file} (${during.layout}), file run ${results.length + 1} of ${runs.length}: ${last.stalled}`;
    if (attempt >= maxBoots) {
      notes.push(note);
      return { results, notes, stalls, last, failed: true };
    }
    notes.push(`${note}; it and the file runs after it were done again in a fresh VM`);
    log(`${note}: booting a fresh VM for file runs ${results.length + 1}-${runs.length}`);
  }
}
