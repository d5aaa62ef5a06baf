// Job cgroups made outside a spawn, for tests: the same plan and the same ops the addon runs inside a
// spawn, through the driver's own ops runner.
import type { CgroupDriver, CgroupOp, JobCgroup, JobCgroupPlan, Limits } from '../../src/cgroup/index';

/** A job cgroup made by a test, with the plan it was made from (its placement, its settle ops). */
export type CreatedCgroup = JobCgroup & { readonly plan: JobCgroupPlan };

/**
 * Creates a job's cgroup as the addon's spawn does: the plan's create ops through the driver's ops
 * runner, the directories made so far removed again if one fails (the addon's setup contract).
 */
export async function createJobCgroup(driver: CgroupDriver, id: string, limits: Limits = {}, cwd = '/'): Promise<CreatedCgroup> {
  const plan = await driver.plan(id, limits, cwd);
  const report = await driver.fs.run(plan.createOps);
  if (report.error !== undefined) {
    const undo = plan.createOps
      .slice(0, report.completed)
      .filter((op) => op.op === 'mkdir')
      .reverse()
      .map((op): CgroupOp => ({ op: 'rmdir', path: op.path, optional: true }));
    await driver.fs.run(undo);
    throw plan.creationError(report);
  }
  return Object.assign(plan.cgroup, { plan });
}

