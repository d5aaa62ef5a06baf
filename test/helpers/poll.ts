import { setTimeout as delay } from 'node:timers/promises';

/**
 * Polls `check` every `everyMs` until it returns true or `ms` pass; returns its last answer. Only for
 * conditions no event announces (kernel state, another process's memory), never instead of an event.
 */
export async function eventually(check: () => boolean | Promise<boolean>, ms: number, everyMs = 100): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= until) return false;
    await delay(everyMs);
  }
}
