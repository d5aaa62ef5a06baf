import { openLog, readRecords } from '../../src/logs/reader';
import type { NativeProcess } from '../../src/native';

export interface CapturedOutput {
  stdout: Buffer;
  stderr: Buffer;
  markers: string[];
  records: number;
}

/** Reads a whole log file back into its streams. */
export async function readCapturedOutput(logPath: string): Promise<CapturedOutput> {
  const file = await openLog(logPath);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const markers: string[] = [];
  let records = 0;
  try {
    for await (const record of readRecords(file)) {
      records++;
      if (record.stream === 'stdout') stdout.push(record.data);
      else if (record.stream === 'stderr') stderr.push(record.data);
      else markers.push(record.data.toString('utf8'));
    }
  } finally {
    await file.close();
  }
  return { stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), markers, records };
}

/** Resolves once the process's stdout (in its log) contains `text`: awaits log growth, never polls. */
export function waitForStdout(proc: NativeProcess, log: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let running = false;
    let again = false; // growth seen while a check ran: check once more, never lose a wake-up
    const check = async (): Promise<void> => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          const { stdout } = await readCapturedOutput(log);
          if (stdout.includes(text)) {
            proc.watchOutput(null);
            resolve();
            return;
          }
        } while (again);
      } catch (error) {
        reject(error);
      } finally {
        running = false;
      }
    };
    proc.watchOutput(() => void check());
    void proc.exited.then(() => void check());
    void check();
  });
}
