// every entry point throws these: catch them from whichever you imported
export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';
export { type Conversion, ConversionHandler, InPlaceConversionHandler, type RamRegion, type SetGmemAttributes } from './conversion.js';
export { type ExitHandler, type RunLoopOptions, runLoop } from './run-loop.js';
