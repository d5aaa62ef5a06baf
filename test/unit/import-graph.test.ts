// The layering rules (docs/design.md, "Layers"), checked on the import graph of every file under
// src/: imports point down only, the CLI never reaches the server or the generated stubs, the
// daemon is entered from job-worker alone. Imports are read from the TypeScript sources (type-only
// ones count: they couple layers as much as the others), by a scan that a self-check keeps honest.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SRC = path.join(ROOT, 'src');

/** Every .ts file under src/, as a path relative to the repository ("src/server/server.ts"). */
function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') ? [path.relative(ROOT, full)] : [];
  });
}

// `import … from 'x'`, `export … from 'x'` (the part before `from` holds only names, braces, commas,
// `*`, `as` and `type`, so no other statement can match), `import 'x'`, `require('x')`, `import('x')`.
const FROM = /^[ \t]*(?:import|export)\s+(?:type\s+)?[\w$*\s,{}]*?\s*from\s*['"]([^'"]+)['"]/gm;
const SIDE_EFFECT = /^[ \t]*import\s*['"]([^'"]+)['"]/gm;
const CALL = /\b(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g;
/** Lines that end an import or re-export: the self-check counts them against what FROM found. */
const ENDS_FROM = /\bfrom\s*['"][^'"]+['"];?[ \t]*$/gm;

function specifiersOf(file: string, text: string): string[] {
  const found = [...text.matchAll(FROM)].map((m) => m[1]!);
  const ends = [...text.matchAll(ENDS_FROM)].length;
  assert.equal(found.length, ends, `${file}: ${ends} lines end an import but the scan read ${found.length}; the scan needs fixing`);
  return [...found, ...[...text.matchAll(SIDE_EFFECT)].map((m) => m[1]!), ...[...text.matchAll(CALL)].map((m) => m[1]!)];
}

/** The file a relative specifier names ("src/worker/index.ts"); undefined for packages and files outside src/. */
function resolve(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = path.join(path.dirname(path.join(ROOT, from)), specifier);
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (candidate.endsWith('.ts') && statSafe(candidate) && candidate.startsWith(SRC + path.sep)) return path.relative(ROOT, candidate);
  }
  return undefined;
}

function statSafe(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

type Graph = ReadonlyMap<string, readonly string[]>;

function importGraph(): Graph {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles()) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    const targets = specifiersOf(file, text)
      .map((specifier) => resolve(file, specifier))
      .filter((target): target is string => target !== undefined);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Is `file` in `area`: a folder ("src/server/") or one file ("src/errors.ts")? */
const within = (file: string, area: string) => (area.endsWith('/') ? file.startsWith(area) : file === area);
const inAny = (file: string, areas: readonly string[]) => areas.some((area) => within(file, area));

/** The edges from files in `from` to files in `to`, as "a → b" lines. */
function edges(graph: Graph, from: readonly string[], to: (target: string, source: string) => boolean): string[] {
  const found: string[] = [];
  for (const [source, targets] of graph) {
    if (!inAny(source, from)) continue;
    for (const target of targets) if (to(target, source)) found.push(`${source} → ${target}`);
  }
  return found;
}

/** Every file reachable from `start`. */
function reachable(graph: Graph, start: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...start];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    queue.push(...(graph.get(file) ?? []));
  }
  return seen;
}

/** Dependency-free modules at the bottom, importable by every layer. */
const BOTTOM = ['src/errors.ts', 'src/logger.ts', 'src/paths.ts', 'src/periodic.ts', 'src/job-id.ts', 'src/job-path.ts', 'src/resource-stats.ts', 'src/byte-size.ts'];
/** The layers below the server: they know nothing of gRPC, the daemon or the clients. */
const CORE = ['src/native/', 'src/cgroup/', 'src/logs/', 'src/worker/'];

const graph = importGraph();

describe('the import graph', () => {
  it('is read from every source file', () => {
    assert.ok(graph.size > 50, `only ${graph.size} files under ${SRC}`);
    assert.ok(graph.get('src/server/job-service.ts')?.includes('src/worker/index.ts'), 'the scan finds a known import');
    assert.ok(graph.get('src/daemon/index.ts')?.includes('src/daemon/config.ts'), 'the scan finds a known re-export');
  });

  it('src/native, src/cgroup, src/logs and src/worker import nothing from the server, the daemon, the clients or the wire', () => {
    assert.deepEqual(edges(graph, CORE, (target) => inAny(target, ['src/server/', 'src/daemon/', 'src/fleet/', 'src/client/', 'src/cli/', 'src/api/', 'src/gen/'])), []);
  });

  it('src/worker uses src/cgroup only through src/cgroup/index.ts', () => {
    assert.deepEqual(edges(graph, ['src/worker/'], (target) => within(target, 'src/cgroup/') && target !== 'src/cgroup/index.ts'), []);
  });

  it('src/server imports only src/worker and src/fleet (their indexes), src/api, src/gen, src/pki and the bottom modules', () => {
    const allowed = ['src/server/', 'src/worker/index.ts', 'src/fleet/index.ts', 'src/api/', 'src/gen/', 'src/pki/', ...BOTTOM];
    assert.deepEqual(edges(graph, ['src/server/'], (target) => !inAny(target, allowed)), []);
  });

  it('src/fleet, between the server and the Worker, imports only src/worker (its index), src/pki and the bottom modules', () => {
    const allowed = ['src/fleet/', 'src/worker/index.ts', 'src/pki/', ...BOTTOM];
    assert.deepEqual(edges(graph, ['src/fleet/'], (target) => !inAny(target, allowed)), []);
  });

  it('src/fleet is used by the server and the daemon only, through its index', () => {
    assert.deepEqual(
      edges(graph, ['src/'], (target, source) => within(target, 'src/fleet/') && !within(source, 'src/fleet/') && !(target === 'src/fleet/index.ts' && inAny(source, ['src/server/', 'src/daemon/']))),
      [],
    );
  });

  it('src/daemon imports only src/server, src/fleet and src/worker (their indexes), src/pki and the bottom modules', () => {
    const allowed = ['src/daemon/', 'src/server/index.ts', 'src/fleet/index.ts', 'src/worker/index.ts', 'src/pki/', ...BOTTOM];
    assert.deepEqual(edges(graph, ['src/daemon/'], (target) => !inAny(target, allowed)), []);
  });

  it('src/daemon is entered from src/cli/job-worker only', () => {
    assert.deepEqual(edges(graph, ['src/'], (target, source) => within(target, 'src/daemon/') && !inAny(source, ['src/daemon/', 'src/cli/job-worker/'])), []);
  });

  it('src/client never imports src/server, src/daemon, src/fleet or src/worker', () => {
    assert.deepEqual(edges(graph, ['src/client/'], (target) => inAny(target, ['src/server/', 'src/daemon/', 'src/fleet/', 'src/cli/', ...CORE])), []);
  });

  it('src/cli never imports src/server or src/gen', () => {
    assert.deepEqual(edges(graph, ['src/cli/'], (target) => inAny(target, ['src/server/', 'src/gen/'])), []);
  });

  it('job-cli reaches no daemon-side code: nothing it loads imports the server, the daemon, the Worker or the addon', () => {
    const loaded = reachable(graph, ['src/cli/job-cli/main.ts']);
    assert.deepEqual([...loaded].filter((file) => inAny(file, ['src/server/', 'src/daemon/', 'src/fleet/', ...CORE])), []);
  });

  it("the UI server (src/cli/ui) reaches the daemons only through src/client: no server, daemon, Worker, wire or generated code", () => {
    assert.deepEqual(edges(graph, ['src/cli/ui/'], (target) => inAny(target, ['src/server/', 'src/daemon/', 'src/api/', 'src/gen/', ...CORE])), []);
  });

  it("the page's code (web/src) takes from src/ only the UI protocol and the CLI's pure formatters", () => {
    const web = path.join(ROOT, 'web', 'src');
    const allowed = ['src/cli/ui/protocol.ts', 'src/cli/job-cli/units.ts', 'src/cli/job-cli/format.ts'];
    const found = readdirSync(web)
      .filter((name) => name.endsWith('.ts'))
      .flatMap((name) => {
        const file = path.join(web, name);
        return specifiersOf(file, readFileSync(file, 'utf8'))
          .filter((specifier) => specifier.startsWith('.'))
          .map((specifier) => path.relative(ROOT, path.resolve(web, specifier)))
          .filter((target) => !target.startsWith(`web${path.sep}`))
          .map((target) => `${target}.ts`);
      });
    assert.ok(found.includes('src/cli/ui/protocol.ts'), 'the scan finds a known import');
    assert.deepEqual(found.filter((target) => !allowed.includes(target)), []);
  });

  it('nothing outside src/cli imports it (bin/ is its only way in)', () => {
    assert.deepEqual(edges(graph, ['src/'], (target, source) => within(target, 'src/cli/') && !within(source, 'src/cli/')), []);
  });

  it('src/api, shared by server and client, imports only src/gen and the bottom modules', () => {
    assert.deepEqual(edges(graph, ['src/api/'], (target) => !inAny(target, ['src/api/', 'src/gen/', ...BOTTOM])), []);
  });

  it('the bottom modules import nothing of the project', () => {
    assert.deepEqual(edges(graph, BOTTOM, () => true), []);
  });
});
