// Every scenario of the reliability suite, in the order they run.
import { attachDetach } from './attach-detach';
import { auditFlood } from './audit-flood';
import { bigLists } from './big-lists';
import { daemonSigkill } from './daemon-sigkill';
import { diskFull } from './disk-full';
import { fdStorm } from './fd-storm';
import { fuzzRequests } from './fuzz';
import { identityExhaustion } from './identity-exhaustion';
import { loadJobs } from './load-jobs';
import { manyFollowers } from './many-followers';
import { oddJobs } from './odd-jobs';
import type { Scenario } from './scenario';
import { security } from './security';
import { stalledStreams } from './stalled-streams';
import { stateDamage } from './state-damage';
import { stateJournal } from './state-journal';
import { stateLinks } from './state-links';
import { stateReadonly } from './state-readonly';
import { twoDaemons } from './two-daemons';
import { vanishingClients } from './vanishing-clients';

export const SCENARIOS: Scenario[] = [
  loadJobs,
  manyFollowers,
  attachDetach,
  daemonSigkill,
  vanishingClients,
  diskFull,
  oddJobs,
  fuzzRequests,
  security,
  fdStorm,
  stalledStreams,
  bigLists,
  auditFlood,
  stateJournal,
  stateLinks,
  stateDamage,
  stateReadonly,
  identityExhaustion,
  twoDaemons,
];
