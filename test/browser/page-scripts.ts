// What the tests run inside the page, as text: the tests compile without the DOM's types (Node's
// and the DOM's clash), so these are plain JavaScript evaluated by Chromium.

/** From now on, keeps every chunk the terminal view writes (its 'jobworker-log-chunk' event) in window.recordedChunks. */
export const RECORD_CHUNKS = `(() => {
  window.recordedChunks = [];
  if (window.recordingChunks) return;
  window.recordingChunks = true;
  document.addEventListener('jobworker-log-chunk', (event) => window.recordedChunks.push(event.detail));
})()`;

/** How many chunks were recorded, and the nextOffset of the last. */
export const RECORDED_SO_FAR = `({ chunks: window.recordedChunks.length, nextOffset: window.recordedChunks.length === 0 ? 0 : window.recordedChunks.at(-1).nextOffset })`;

/** The recorded bytes' SHA-256 and length, where the chunks do not tile the log, and the text when small. */
export const RECORDED_OUTPUT = `(async () => {
  const chunks = window.recordedChunks;
  const gaps = [];
  for (let i = 1; i < chunks.length; i++) if (chunks[i].offset !== chunks[i - 1].nextOffset) gaps.push(chunks[i - 1].nextOffset + ' -> ' + chunks[i].offset);
  const all = new Uint8Array(await new Blob(chunks.map((chunk) => chunk.data)).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  return { sha256: [...digest].map((byte) => byte.toString(16).padStart(2, '0')).join(''), bytes: all.length, gaps, text: all.length < (1 << 20) ? new TextDecoder().decode(all) : null };
})()`;

/** The SHA-256 and length of what a GET of `url` answers (same origin, the page's session). */
export function fetchDigest(url: string): string {
  return `(async () => {
    const headers = { 'x-jobworker-session': localStorage.getItem('jobworker-session') };
    const bytes = new Uint8Array(await (await fetch(${JSON.stringify(url)}, { headers })).arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return { bytes: bytes.length, sha256: [...digest].map((byte) => byte.toString(16).padStart(2, '0')).join('') };
  })()`;
}

/** A chart's plotted data, by series label ("time" first): what uPlot draws. */
export function chartSeries(name: string): string {
  return `(() => {
    const plot = document.querySelector('[data-chart="${name}"]').uplot;
    return Object.fromEntries(plot.series.map((series, i) => [i === 0 ? 'time' : series.label, plot.data[i]]));
  })()`;
}

/** A request made by the page's own script, with the session it keeps: { status, body }. */
export function pageRequest(method: string, url: string, body: unknown): string {
  return `(async () => {
    const session = localStorage.getItem('jobworker-session');
    const response = await fetch(${JSON.stringify(url)}, { method: ${JSON.stringify(method)}, headers: { 'content-type': 'application/json', 'x-jobworker-session': session }, body: ${JSON.stringify(JSON.stringify(body))} });
    return { status: response.status, body: await response.json() };
  })()`;
}

/**
 * The colour (red, green, blue) and weight the terminal draws each text in: the innermost element
 * on its screen rows that holds it.
 */
export function TEXT_COLOURS(texts: string[]): string {
  return `(() => {
    const elements = [...document.querySelectorAll('.xterm-rows > div, .xterm-rows > div *')];
    return Object.fromEntries(${JSON.stringify(texts)}.map((text) => {
      const holders = elements.filter((element) => element.textContent.replace(/\u00a0/g, ' ').includes(text));
      const element = holders.at(-1);
      if (element === undefined) return [text, null];
      const style = getComputedStyle(element);
      return [text, { rgb: style.color.match(/\\d+/g).slice(0, 3).map(Number), bold: Number(style.fontWeight) >= 600 }];
    }));
  })()`;
}

/** A function listing the terminal's screen rows with text, and whether a stderr tint covers each. */
export const TINTED_ROWS = `() => {
  // A tint is an element the user sees: shown, and with a background that is not transparent.
  const visible = (tint) => tint.style.display !== 'none' && !['transparent', 'rgba(0, 0, 0, 0)'].includes(getComputedStyle(tint).backgroundColor);
  const tints = [...document.querySelectorAll('.xterm-decoration.stderr-lines')].filter(visible).map((tint) => tint.getBoundingClientRect());
  return [...document.querySelectorAll('.xterm-rows > div')]
    .map((row) => ({ text: row.textContent.replace(/\u00a0/g, ' ').trimEnd(), box: row.getBoundingClientRect() }))
    .filter((row) => row.text !== '')
    .map(({ text, box }) => {
      const middle = (box.top + box.bottom) / 2;
      return { text, tinted: tints.some((tint) => tint.height > 0 && middle > tint.top && middle < tint.bottom) };
    });
}`;
