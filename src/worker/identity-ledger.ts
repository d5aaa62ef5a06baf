// Each identity's use of the quotas the Worker keeps: jobs running now, and bytes of log on disk. The
// log bytes live in a native budget shared with the capture of the identity's running jobs (it is
// charged as they write, so however many write at once they never pass the quota together); this
// ledger charges the retained logs at open, releases a log's bytes when its job is removed, and
// refuses a start once either quota is reached, saying which.
import { QuotaExceededError } from '../errors';
import { FILE_HEADER_SIZE } from '../logs/format';
import { LogBudget } from '../native';
import type { DaemonQuotas } from './identity-policy';

/** What an identity uses of the Worker's quotas now. */
export interface QuotaUsage {
  runningJobs: number;
  maxRunningJobs: number;
  /** Logs on disk: every byte after each file's header, running jobs' included. */
  logBytes: number;
  maxLogBytes: number;
}

interface Account {
  running: number;
  budget: LogBudget;
}

/** Bytes of a log that count against its identity: everything after the file header. */
export function chargedLogBytes(logBytes: number): number {
  return Math.max(0, logBytes - FILE_HEADER_SIZE);
}

export class IdentityLedger {
  #accounts = new Map<string, Account>();

  constructor(private readonly quotasOf: (identity: string) => DaemonQuotas) {}

  /** A retained log found at open (`logBytes`: the whole file). */
  chargeLog(identity: string, logBytes: number): void {
    this.#account(identity).budget.charge(chargedLogBytes(logBytes));
  }

  /** A removed job's log (`logBytes`: the whole file): its bytes are free again. */
  releaseLog(identity: string, logBytes: number): void {
    const account = this.#accounts.get(identity);
    if (account === undefined) return;
    account.budget.release(chargedLogBytes(logBytes));
    this.#forgetIfIdle(identity, account);
  }

  /**
   * Counts one more running job of `identity`, or throws QuotaExceededError naming the quota it is
   * at. Returns the log budget its capture draws from and what to call once the job has ended.
   */
  admit(identity: string): { budget: LogBudget; ended(): void } {
    const quotas = this.quotasOf(identity);
    const account = this.#account(identity);
    if (account.running >= quotas.maxRunningJobs) {
      throw new QuotaExceededError(identity, 'maxRunningJobs', quotas.maxRunningJobs, account.running, 'stop one of its jobs (job-cli stop ID) or wait for one to end');
    }
    if (account.budget.available <= 0) {
      throw new QuotaExceededError(identity, 'logBytes', quotas.logBytes, account.budget.used, 'remove finished jobs to free their logs (job-cli remove ID)');
    }
    account.running++;
    let ended = false;
    return {
      budget: account.budget,
      ended: () => {
        if (ended) return;
        ended = true;
        account.running--;
        this.#forgetIfIdle(identity, account);
      },
    };
  }

  usage(identity: string): QuotaUsage {
    const quotas = this.quotasOf(identity);
    const account = this.#accounts.get(identity);
    return {
      runningJobs: account?.running ?? 0,
      maxRunningJobs: quotas.maxRunningJobs,
      logBytes: Math.max(0, account?.budget.used ?? 0),
      maxLogBytes: quotas.logBytes,
    };
  }

  /** Identities with a running job or a log on disk. */
  identities(): string[] {
    return [...this.#accounts.keys()];
  }

  #account(identity: string): Account {
    let account = this.#accounts.get(identity);
    if (account === undefined) {
      account = { running: 0, budget: new LogBudget(this.quotasOf(identity).logBytes) };
      this.#accounts.set(identity, account);
    }
    return account;
  }

  /** An identity with nothing running and no log is forgotten: the map holds only who uses something. */
  #forgetIfIdle(identity: string, account: Account): void {
    if (account.running === 0 && account.budget.used <= 0) this.#accounts.delete(identity);
  }
}
