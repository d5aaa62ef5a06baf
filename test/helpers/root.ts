// Root-only tests skip with a clear message elsewhere; CI runs as root and runs them all.
export const isRoot = process.getuid?.() === 0;
export const requireRoot: { skip?: string } = isRoot
  ? {}
  : { skip: 'needs root (real cgroups and processes); CI runs as root' };
