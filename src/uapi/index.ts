export * from './constants.js';
export * from './errno.js';
export * from './ioctls.js';
export * from './layout.js';
export * as registry from './registry.js';
export * as structs from './structs.js';
export * as x86 from './x86.js';
