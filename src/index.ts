/** guestmem: the interface, the uAPI facts and the model backend (the kvm backend is `guestmem/kvm`). */
export * from './api.js';
export * from './model/index.js';
export * as uapi from './uapi/index.js';
