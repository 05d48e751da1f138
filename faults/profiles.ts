// How much load and how many faults each profile runs. `short` runs in CI on every submission
// (scripts/test.sh, through faults/test/suite.test.ts); `long` runs on demand
// (`npm run faults -- --profile long`) and its table goes in the README.

export interface FaultProfile {
  name: 'short' | 'long'
  /** Arrival rate of payments during each fault's load. */
  rateRps: number
  /** Load duration per fault. */
  loadS: number
  /** Load before the first injection, so the fault hits payments at every stage. */
  leadInMs: number
  /** Times each fault is injected (and cleared) during its load. */
  repeats: number
  /** Pause between a clear and the next injection. */
  gapMs: number
  /** How long an outage lasts, by kind of component. */
  nodeDownMs: number
  processorDownMs: number
  kafkaDownMs: number
  postgresDownMs: number
  pspFaultMs: number
  /** Issue #16: how long the second PSP (Nimbus) is down in psp-provider-outage. */
  pspProviderDownMs: number
  /** After the load and the last clear: every payment terminal within this bound, or the fault fails. */
  settleDeadlineMs: number
  /** All services healthy again before the next fault, within this bound. */
  healthyDeadlineMs: number
}

export const faultProfiles: Record<FaultProfile['name'], FaultProfile> = {
  short: {
    name: 'short',
    rateRps: 40,
    loadS: 5,
    leadInMs: 1_000,
    repeats: 1,
    gapMs: 500,
    nodeDownMs: 1_000,
    processorDownMs: 1_500,
    kafkaDownMs: 4_000,
    postgresDownMs: 2_000,
    pspFaultMs: 2_000,
    pspProviderDownMs: 10_000,
    settleDeadlineMs: 90_000,
    healthyDeadlineMs: 90_000,
  },
  long: {
    name: 'long',
    rateRps: 100,
    loadS: 60,
    leadInMs: 3_000,
    repeats: 3,
    gapMs: 5_000,
    nodeDownMs: 3_000,
    processorDownMs: 5_000,
    kafkaDownMs: 30_000,
    postgresDownMs: 10_000,
    pspFaultMs: 8_000,
    pspProviderDownMs: 60_000,
    settleDeadlineMs: 300_000,
    healthyDeadlineMs: 180_000,
  },
}
