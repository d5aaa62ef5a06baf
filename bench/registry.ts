// Every benchmark, in the order they run. Adding one: write a module exporting a `Benchmark`
// (see harness.ts) and list it here.
import { captureBenchmark } from './capture';
import { captureWhileExitsBenchmark } from './capture-while-exits';
import type { Benchmark } from './harness';
import { spawnBenchmark } from './spawn';
import { spawnHeapBenchmark } from './spawn-heap';
import { spawnIsolatedBenchmark } from './spawn-isolated';
import { grpcBenchmark } from './grpc';
import { workerBenchmark } from './worker';
import { workerMemoryBenchmark } from './worker-memory';

export const benchmarks: readonly Benchmark[] = [spawnBenchmark, spawnIsolatedBenchmark, spawnHeapBenchmark, captureBenchmark, captureWhileExitsBenchmark, workerBenchmark, workerMemoryBenchmark, grpcBenchmark];
