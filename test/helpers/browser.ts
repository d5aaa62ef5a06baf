// A real headless Chromium (Debian's `chromium`) for the dashboard's end-to-end tests, driven by
// playwright-core over its pipe: a fresh profile per launch, removed afterwards. Tests skip with a
// reason where the browser is not installed (.ci/run installs it).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = process.env.JOBWORKER_CHROMIUM ?? '/usr/bin/chromium';
// CI installs it: there a missing browser is a failure, not a skip.
export const requireChromium: { skip?: string } = existsSync(CHROMIUM) || process.env.CI === 'true' ? {} : { skip: `needs Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)` };

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'jobworker-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
