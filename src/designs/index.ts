/**
 * The seed's 2022 design beside upstream guest_memfd (DESIGN.md "designs/"): the v7 uAPI and the
 * negotiated variant as models on the same core, the registry a scenario backend takes, and the
 * hazard suite that runs the review's concerns under every design.
 */

// every entry point throws these: catch them from whichever you imported
export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';
export { GuestMemfdKvm } from './guest-memfd/index.js';
export { type HazardOutcome, type HazardRun, HazardRunError, outcomeLabel, runHazard, runHazards } from './hazards/run.js';
export { type HazardFile, HazardFileError, parseHazard, stepsFor } from './hazards/schema.js';
export { formatMarkdown, formatText, type HazardRow, hazardRows, toJson } from './hazards/table.js';
export { NegotiatedKvm } from './negotiated/index.js';
export { createDesignKvm, DESIGN_NAMES, DESIGN_TITLES, DESIGNS, type DesignName, isDesignName } from './registry.js';
export { V7Kvm } from './v7/kvm.js';
export { V7KvmVm, V7Vm } from './v7/vm.js';
