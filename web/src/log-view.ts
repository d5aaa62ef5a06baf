// A job's output in a real terminal (xterm.js: ANSI colours, cursor movement, wide characters),
// exactly the bytes the job wrote — jobworker's own notes and the end status are shown beside it,
// never in it. Lines written to stderr get a red tint and a mark in the scrollbar.
//
// Frames arrive on the link (one per chunk of the log, a whole record each) and are written in
// order; each one written is acknowledged, which lets the server send more (at most a window ahead:
// a paused or slow page holds the daemon's stream back rather than piling up). After a dropped
// connection the view asks again from the nextOffset of the last chunk it received — a record
// boundary — so nothing is missed or shown twice; chunks already received wait in the queue.
import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon } from '@xterm/addon-search';
import { Terminal, type IDecoration, type IMarker } from '@xterm/xterm';

import type { LogFrame, UiJob } from '../../src/cli/ui/protocol';
import { h, replace } from './dom';
import { formatBytes } from './format';
import { download, jobPath, type Link } from './link';

type Streams = 'both' | 'stdout' | 'stderr';

const SCROLLBACK_LINES = 50_000;
/** Stderr tints kept (each costs a marker); older ones go. */
const MAX_STDERR_MARKS = 2000;
/** Codes after which asking again makes no sense. */
const FINAL_ERRORS = new Set(['NOT_FOUND', 'PERMISSION_DENIED', 'UNAUTHENTICATED', 'INVALID_ARGUMENT', 'DATA_LOSS']);

export interface LogChunkDetail {
  stream: 'stdout' | 'stderr';
  offset: number;
  nextOffset: number;
  data: Uint8Array;
}

/** Fired on the view's element for each chunk written to the terminal (for scripts and tests). */
export const LOG_CHUNK_EVENT = 'jobworker-log-chunk';

export class LogView {
  readonly element: HTMLElement;
  readonly #terminal: Terminal;
  readonly #search: SearchAddon;
  readonly #status = h('span', { class: 'log-status', 'data-role': 'log-status' });
  readonly #notes = h('ul', { class: 'log-notes' });
  readonly #downloads = h('span', { class: 'downloads' });
  readonly #matches = h('span', { class: 'search-results', 'data-role': 'search-results' });
  readonly #pauseButton: HTMLButtonElement;
  readonly #link: Link;
  readonly #host: string;
  readonly #job: string;
  readonly #dispose: (() => void)[] = [];
  #streams: Streams = 'both';
  #sub: number | undefined;
  #stopFrames: (() => void) | undefined;
  /** The nextOffset of the last chunk received: where to ask again from. */
  #resumeFrom = 0;
  #queue: LogFrame[] = [];
  #writing = false;
  /** Writes handed to xterm.js and not parsed yet, and who waits for none to be left. */
  #unparsed = 0;
  #whenParsed: (() => void)[] = [];
  #paused = false;
  #ended = false;
  #failed = false;
  #shownBytes = 0;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #stderrRun: { marker: IMarker; decoration: IDecoration | undefined } | undefined;
  #stderrMarks: { marker: IMarker; decoration: IDecoration | undefined }[] = [];

  constructor(link: Link, host: string, job: string) {
    this.#link = link;
    this.#host = host;
    this.#job = job;
    this.#terminal = new Terminal({
      convertEol: true, // pipes carry bare \n; a terminal needs \r\n to return to the first column
      disableStdin: true,
      scrollback: SCROLLBACK_LINES,
      allowProposedApi: true, // decorations (the stderr tint, search matches)
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
      fontSize: 13,
      rows: 30,
      theme: { background: '#14161a', foreground: '#d7dae0', selectionBackground: '#3d5a80' },
    });
    this.#search = new SearchAddon({ highlightLimit: 2000 });
    this.#terminal.loadAddon(this.#search);
    this.#search.onDidChangeResults(({ resultIndex, resultCount }) => this.#showMatches(resultIndex, resultCount));

    const streamSelect = h('select', { name: 'streams' }, (['both', 'stdout', 'stderr'] as const).map((value) => h('option', { value }, value === 'both' ? 'stdout and stderr' : `${value} only`)));
    streamSelect.addEventListener('change', () => this.#restart(streamSelect.value as Streams));
    this.#pauseButton = h('button', { type: 'button', 'data-role': 'pause', onclick: () => this.#togglePause() }, 'Pause');
    const query = h('input', { type: 'search', name: 'log-search', placeholder: 'search the output', size: 22 });
    const find = (forward: boolean) => {
      // Decorations on: they mark every match, and only with them does the addon count matches.
      const options = { decorations: { matchBackground: '#5c4d1a', matchOverviewRuler: '#e0b030', activeMatchBackground: '#a07d10', activeMatchColorOverviewRuler: '#ffd040' } };
      if (query.value === '') {
        this.#search.clearDecorations();
        replace(this.#matches);
        return;
      }
      if (forward) this.#search.findNext(query.value, options);
      else this.#search.findPrevious(query.value, options);
    };
    query.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') find(!event.shiftKey);
    });
    const screen = h('div', { class: 'terminal' });
    this.element = h(
      'section',
      { class: 'log-view' },
      h(
        'div',
        { class: 'log-toolbar' },
        streamSelect,
        this.#pauseButton,
        query,
        h('button', { type: 'button', onclick: () => find(false), title: 'previous match (Shift+Enter)' }, '↑'),
        h('button', { type: 'button', onclick: () => find(true), title: 'next match (Enter)' }, '↓'),
        this.#matches,
        this.#downloads,
        this.#status,
      ),
      screen,
      h('p', { class: 'legend' }, h('span', { class: 'stderr-swatch' }), ' stderr'),
      this.#notes,
    );
    this.#terminal.open(screen);
    // As many columns and rows as the box holds, now and when the window changes.
    const fit = new FitAddon();
    this.#terminal.loadAddon(fit);
    const resize = new ResizeObserver(() => fit.fit());
    resize.observe(screen);
    this.#dispose.push(() => resize.disconnect());
    this.#renderDownloads();
    this.#dispose.push(link.onState((state) => (state === 'live' ? this.#subscribe() : this.#lost())));
    this.#dispose.push(
      link.onMessage((message) => {
        if (message.type === 'sub-error' && message.sub === this.#sub) this.#subError(message.code, message.message);
      }),
    );
  }

  dispose(): void {
    this.#cancel();
    clearTimeout(this.#retry);
    for (const dispose of this.#dispose.splice(0)) dispose();
    this.#terminal.dispose();
  }

  #subscribe(): void {
    clearTimeout(this.#retry);
    if (this.#ended || this.#failed || this.#sub !== undefined) return;
    const sub = this.#link.newSub();
    this.#sub = sub;
    this.#stopFrames = this.#link.onFrames(sub, (frame) => this.#receive(frame));
    const streams = this.#streams === 'both' ? [] : [this.#streams];
    if (!this.#link.send({ type: 'stream-log', sub, host: this.#host, job: this.#job, from: this.#resumeFrom, follow: true, streams })) this.#lost();
    this.#showStatus();
  }

  /** The link dropped: the server forgot the subscription; a new one starts when it is back. */
  #lost(): void {
    this.#stopFrames?.();
    this.#stopFrames = undefined;
    this.#sub = undefined;
    this.#showStatus();
  }

  #cancel(): void {
    if (this.#sub !== undefined) this.#link.send({ type: 'cancel', sub: this.#sub });
    this.#lost();
  }

  #subError(code: string, message: string): void {
    this.#lost();
    if (FINAL_ERRORS.has(code)) {
      this.#failed = true;
      this.#note(`the output cannot be read: ${message}`);
    } else {
      this.#note(`the output stopped (${message}); asking again from byte ${this.#resumeFrom} of the log`);
      this.#retry = setTimeout(() => this.#subscribe(), 2000);
    }
    this.#showStatus();
  }

  #receive(frame: LogFrame): void {
    if (frame.sub !== this.#sub) return;
    if (frame.kind === 'end') {
      this.#ended = true;
      this.#lost();
    } else {
      this.#resumeFrom = frame.nextOffset;
    }
    this.#queue.push(frame);
    void this.#pump();
  }

  /**
   * Writes what is queued, in order. Stdout goes to xterm.js without waiting for each write to be
   * parsed (it queues them itself; each is acknowledged once parsed); a stderr chunk waits for the
   * writes before it, so its tint starts on the line it starts on.
   */
  async #pump(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      while (!this.#paused && this.#queue.length > 0) {
        const frame = this.#queue.shift()!;
        if (frame.kind === 'end') {
          await this.#parsed();
          this.#finish(JSON.parse(new TextDecoder().decode(frame.data)) as UiJob);
        } else if (frame.stream === 'marker') {
          this.#note(`jobworker: ${new TextDecoder().decode(frame.data)}`);
          this.#ack(frame);
        } else if (frame.stream === 'stderr') {
          await this.#parsed();
          const run = this.#stderrRun ?? { marker: this.#terminal.registerMarker(0), decoration: undefined };
          this.#write(frame);
          await this.#parsed();
          this.#markStderr(run);
        } else {
          this.#stderrRun = undefined;
          this.#write(frame);
        }
      }
    } finally {
      this.#writing = false;
      this.#showStatus();
    }
  }

  #write(frame: LogFrame): void {
    this.#unparsed++;
    this.#terminal.write(frame.data, () => {
      this.#shownBytes += frame.data.length;
      this.#ack(frame);
      const stream = frame.stream === 'stderr' ? 'stderr' : 'stdout';
      this.element.dispatchEvent(new CustomEvent<LogChunkDetail>(LOG_CHUNK_EVENT, { bubbles: true, detail: { stream, offset: frame.offset, nextOffset: frame.nextOffset, data: frame.data } }));
      if (--this.#unparsed === 0) {
        for (const resolve of this.#whenParsed.splice(0)) resolve();
        this.#showStatus();
      }
    });
  }

  /** Resolves once xterm.js has parsed every write so far. */
  #parsed(): Promise<void> {
    return this.#unparsed === 0 ? Promise.resolve() : new Promise((resolve) => this.#whenParsed.push(resolve));
  }

  /** Lets the server send that much more (only for the current subscription: an old one is gone). */
  #ack(frame: LogFrame): void {
    if (frame.sub === this.#sub) this.#link.send({ type: 'ack', sub: frame.sub, bytes: frame.data.length });
  }

  /** Tints the lines from the run's first to the cursor's (a run: stderr chunks with no stdout between). */
  #markStderr(run: { marker: IMarker; decoration: IDecoration | undefined }): void {
    const buffer = this.#terminal.buffer.active;
    const cursorLine = buffer.baseY + buffer.cursorY - (buffer.cursorX === 0 ? 1 : 0);
    const height = cursorLine - run.marker.line + 1;
    if (run.marker.isDisposed || height < 1) return;
    run.decoration?.dispose();
    run.decoration = this.#terminal.registerDecoration({
      marker: run.marker,
      width: this.#terminal.cols,
      height,
      // No backgroundColor: xterm.js paints it on the marker's line only, whatever the height; the
      // element spans every line of the run and style.css gives it a translucent tint.
      layer: 'bottom',
      overviewRulerOptions: { color: '#e5536b', position: 'left' },
    });
    run.decoration?.onRender((element) => element.classList.add('stderr-lines'));
    if (this.#stderrRun !== run) {
      this.#stderrRun = run;
      this.#stderrMarks.push(run);
      if (this.#stderrMarks.length > MAX_STDERR_MARKS) {
        const old = this.#stderrMarks.shift()!;
        old.decoration?.dispose();
        old.marker.dispose();
      }
    }
  }

  #showMatches(index: number, count: number): void {
    this.#matches.dataset.count = String(count);
    this.#matches.dataset.index = String(index);
    if (count === 0) replace(this.#matches, 'no match');
    else if (index === -1) replace(this.#matches, `${count} matches`);
    else replace(this.#matches, `${index + 1} of ${count}`);
  }

  #finish(job: UiJob): void {
    this.#note(`the output ended: ${job.reason ?? job.state}`);
    this.#renderDownloads();
  }

  #togglePause(): void {
    this.#paused = !this.#paused;
    this.#pauseButton.textContent = this.#paused ? 'Follow' : 'Pause';
    if (!this.#paused) {
      this.#terminal.scrollToBottom();
      void this.#pump();
    }
    this.#showStatus();
  }

  /** Another stream selection: the output again from the start. */
  #restart(streams: Streams): void {
    this.#cancel();
    clearTimeout(this.#retry);
    this.#streams = streams;
    this.#queue = [];
    this.#resumeFrom = 0;
    this.#ended = false;
    this.#failed = false;
    this.#shownBytes = 0;
    this.#stderrRun = undefined;
    for (const mark of this.#stderrMarks.splice(0)) {
      mark.decoration?.dispose();
      mark.marker.dispose();
    }
    this.#terminal.reset();
    replace(this.#notes);
    if (this.#link.state === 'live') this.#subscribe();
  }

  #note(text: string): void {
    this.#notes.append(h('li', {}, text));
  }

  #renderDownloads(): void {
    const base = `${jobPath(this.#host, this.#job)}/log`;
    // Links for what they are (copyable, and the tests read them); a click fetches with the session.
    const link = (href: string, name: string, text: string, role?: string) => {
      const anchor = h('a', { href, download: name, ...(role === undefined ? {} : { 'data-role': role }) }, text);
      anchor.addEventListener('click', (event) => {
        event.preventDefault();
        void download(href, name).then((error) => error !== null && this.#note(`download failed: ${error}`));
      });
      return anchor;
    };
    replace(
      this.#downloads,
      'Download: ',
      link(base, `job-${this.#job}.log`, 'output', 'download'),
      ' · ',
      link(`${base}?streams=stdout`, `job-${this.#job}-stdout.log`, 'stdout'),
      ' · ',
      link(`${base}?streams=stderr`, `job-${this.#job}-stderr.log`, 'stderr'),
    );
  }

  #showStatus(): void {
    let state: 'failed' | 'ended' | 'paused' | 'reconnecting' | 'following';
    if (this.#failed) state = 'failed';
    else if (this.#ended && this.#queue.length === 0 && this.#unparsed === 0) state = 'ended';
    else if (this.#paused) state = 'paused';
    else if (this.#sub === undefined && !this.#ended) state = 'reconnecting';
    else state = 'following';
    this.#status.dataset.state = state;
    this.#status.dataset.shownBytes = String(this.#shownBytes);
    this.#status.dataset.endReceived = String(this.#ended);
    const text = { failed: 'unavailable', ended: 'ended', paused: `paused (${this.#queue.length} chunks waiting)`, reconnecting: 'reconnecting…', following: 'following' }[state];
    replace(this.#status, `${text} · ${formatBytes(this.#shownBytes)} shown`);
  }
}
