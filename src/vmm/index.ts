export { type Conversion, ConversionHandler, type RamRegion } from './conversion.js';
export { type ExitHandler, type RunLoopOptions, runLoop } from './run-loop.js';
