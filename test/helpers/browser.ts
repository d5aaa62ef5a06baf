// A real headless Chromium (Debian's `chromium`) for the dashboard's end-to-end tests, driven by
// playwright-core over its pipe: a fresh profile per launch, removed afterwards. Tests skip with a
// reason where the browser is not installed (.ci/run installs it).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { chromium, type BrowserContext, type Page } from 'playwright-core';

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

/** JOBWORKER_UI_SCREENSHOTS=DIR: where the browser tests save the main pages (docs/ui-*.png are made this way). */
export const SCREENSHOTS = process.env.JOBWORKER_UI_SCREENSHOTS;

/** Saves the whole page as DIR/ui-NAME.png when SCREENSHOTS is set. */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS === undefined) return;
  await page.evaluate('window.scrollTo(0, 0)'); // a focused field may have scrolled the page (the sticky header would land mid-picture)
  await page.screenshot({ path: path.join(SCREENSHOTS, `ui-${name}.png`), fullPage: true });
}

/** The lines the dashboard's terminal view shows on screen now. */
export async function terminalScreenLines(page: Page): Promise<string[]> {
  const rows = await page.locator('.xterm-rows > div').allTextContents();
  return rows.map((text) => text.replace(/\u00a0/g, ' ').trimEnd()).filter((text) => text !== '');
}

/** Resolves once the job page's output has ended (the status line says so). */
export async function waitForTerminalEnd(page: Page, timeoutMs = 60_000): Promise<void> {
  await page.locator('[data-role="log-status"][data-state="ended"]').waitFor({ timeout: timeoutMs });
}
