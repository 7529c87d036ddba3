export { KNOWN_DIVERGENCES, type KnownDivergence, normalize, UNCOMPARED_ACCESSES, UNCOMPARED_IDS, UNCOMPARED_SLOT_ADDRESS } from '../scenario/divergences.js';
export {
  FIRST_STEP,
  type GenerateOptions,
  generateBatch,
  parseBatch,
  type ReplayOutcome,
  replaySteps,
  runBatch,
  type SequenceBatch,
  type SequenceMeta,
  type SequenceResult,
  scenariosBatch,
  shrinkSequence,
} from './batch.js';
export { type CampaignOptions, type CampaignResult, counterexampleScenario, PathError, replay, runCampaign, type Side } from './campaign.js';
export { MUTANTS, mutantKvm, type PlantedBug } from './mutants.js';
export { Divergence, Pair } from './pair.js';
