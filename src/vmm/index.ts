export { type Conversion, ConversionHandler, InPlaceConversionHandler, type RamRegion, type SetGmemAttributes } from './conversion.js';
export { type ExitHandler, type RunLoopOptions, runLoop } from './run-loop.js';
