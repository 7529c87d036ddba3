export { type CampaignOptions, type CampaignResult, counterexampleScenario, replay, runCampaign, type Side } from './campaign.js';
export { KNOWN_DIVERGENCES, type KnownDivergence, normalize, UNCOMPARED_ACCESSES } from './divergences.js';
export { MUTANTS } from './mutants.js';
export { Divergence, Pair } from './pair.js';
