/**
 * The `guestmem/measure` entry point: launch digests (src/measure/), plus the errors every entry
 * point exports. It lives outside measure/ because measure/ is pure and imports only uapi/.
 */
export { type ErrnoName, HostFault, type KvmErrno, KvmError } from '../api.js';
export * from '../measure/index.js';
