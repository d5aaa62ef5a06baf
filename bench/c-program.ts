// C programs that serve as floors are compiled at bench time (cc -O2) into the run's scratch
// directory, so nothing compiled is ever committed or left behind.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** bench/<file>, found from the compiled dist/bench/ as well as from the sources. */
export function benchSourcePath(file: string): string {
  return path.resolve(__dirname, '..', '..', 'bench', file);
}

/** Compiles bench/<source> with `cc -O2` into `outDir`; returns the executable's path. */
export async function compileC(source: string, outDir: string): Promise<string> {
  const output = path.join(outDir, path.basename(source, '.c'));
  const cc = process.env.CC ?? 'cc';
  try {
    await run(cc, ['-O2', '-Wall', '-o', output, benchSourcePath(source)]);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot compile bench/${source} with ${cc} (is a C compiler installed?): ${detail}`);
  }
  return output;
}
