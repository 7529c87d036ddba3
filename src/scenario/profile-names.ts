/**
 * The model's kernel profiles by name, as a scenario's `kernel` spells them: taken from
 * model/profiles.ts so that the format never types them a second time. Besides model-backend.ts
 * this is the one scenario module that reaches into the model, and it takes names only.
 */
export { COCO_PROFILE_NAMES, VERSION_PROFILE_NAMES } from '../model/profiles.js';
