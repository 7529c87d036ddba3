// every entry point throws these: catch them from whichever you imported
export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';
export { inKernelRange, type KernelRange, parseKernelRange, releaseVersion } from './kernels.js';
export { parseScenario } from './load.js';
export { type ModelBackendOptions, modelBackend } from './model-backend.js';
export { OP_LIST, type OpName, opDef } from './ops/index.js';
export { formatHuman, summarize, toJson } from './report.js';
export { type GuestFacts, REQUIREMENT_TABLE, REQUIREMENTS, unmetRequirement } from './requirements.js';
export { type Backend, judge, type Outcome, type RunHooks, runScenario, type ScenarioResult, Session, type StepResult, type Tagged } from './runner.js';
export { type Scenario, ScenarioSchema, type Step, StepSchema } from './schema.js';
export { ScenarioError } from './values.js';
