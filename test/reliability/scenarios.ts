// Every scenario of the reliability suite, in the order they run.
import { attachDetach } from './attach-detach';
import { daemonSigkill } from './daemon-sigkill';
import { diskFull } from './disk-full';
import { fuzzRequests } from './fuzz';
import { identityExhaustion } from './identity-exhaustion';
import { loadJobs } from './load-jobs';
import { manyFollowers } from './many-followers';
import { oddJobs } from './odd-jobs';
import type { Scenario } from './scenario';
import { security } from './security';
import { twoDaemons } from './two-daemons';
import { vanishingClients } from './vanishing-clients';

export const SCENARIOS: Scenario[] = [loadJobs, manyFollowers, attachDetach, daemonSigkill, vanishingClients, diskFull, oddJobs, fuzzRequests, security, identityExhaustion, twoDaemons];
