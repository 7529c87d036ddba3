import { createModelKvm, KvmError, uapi } from 'guestmem';

// A software-protected VM on the model of Linux 6.18: 2 MiB of guest memory backed by a guest_memfd
// (private) and by anonymous memory (shared), then one page converted to private.
const kvm = createModelKvm({ kernel: '6.18' });
const vm = kvm.createVm('sw_protected');
const gmem = vm.createGuestMemfd({ size: 0x200000n, flags: 0n });
const shared = vm.mmapAnonymous(0x200000n);
vm.setUserMemoryRegion2({
  slot: 0,
  flags: uapi.KVM_MEM_GUEST_MEMFD,
  guestPhysAddr: 0n,
  memorySize: 0x200000n,
  userspaceAddr: shared.addr,
  guestMemfd: gmem.fd,
  guestMemfdOffset: 0n,
});
vm.setMemoryAttributes({ address: 0x1000n, size: 0x1000n, attributes: uapi.KVM_MEMORY_ATTRIBUTE_PRIVATE, flags: 0n });

// Failures throw KvmError with the errno the kernel returns, in the kernel's check order.
try {
  vm.createGuestMemfd({ size: 4095n, flags: 0n }); // not page aligned
} catch (e) {
  if (!(e instanceof KvmError)) throw e;
  switch (e.errno) {
    case 'EINVAL':
      console.log(`refused as the kernel would: ${e.message}`);
      break;
    default:
      throw e;
  }
}
kvm.close();
