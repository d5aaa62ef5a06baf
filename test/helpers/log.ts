import { openLog, readRecords } from '../../src/logs/reader';

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
