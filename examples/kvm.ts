import { KvmError, kvmAvailable, openKvm } from 'guestmem/kvm';

// The same calls on the real /dev/kvm. What a kernel offers differs (guest_memfd, its flags, memory
// attributes): every refusal is the kernel's own errno, so branch on it.
const ok = kvmAvailable();
if (!ok.ok) {
  console.log(`skipped: ${ok.reason}`);
} else {
  const kvm = openKvm();
  try {
    const vm = kvm.createVm('default');
    const gmem = vm.createGuestMemfd({ size: 0x200000n, flags: 0n });
    const shared = vm.mmapAnonymous(0x200000n);
    vm.setUserMemoryRegion2({
      slot: 0,
      flags: 1 << 2, // KVM_MEM_GUEST_MEMFD
      guestPhysAddr: 0n,
      memorySize: 0x200000n,
      userspaceAddr: shared.addr,
      guestMemfd: gmem.fd,
      guestMemfdOffset: 0n,
    });
    // convert a page to private (KVM_MEMORY_ATTRIBUTE_PRIVATE)
    vm.setMemoryAttributes({ address: 0x1000n, size: 0x1000n, attributes: 1n << 3n, flags: 0n });
    console.log('converted 0x1000 to private');
  } catch (e) {
    if (!(e instanceof KvmError)) throw e;
    switch (e.errno) {
      case 'ENOTTY': // no guest_memfd, or no KVM_SET_MEMORY_ATTRIBUTES, in this kernel
      case 'EINVAL': // e.g. a default VM: private memory needs a software-protected, SNP or TDX VM
        console.log(`this kernel said ${e.errno} to ${e.op}`);
        break;
      default:
        throw e;
    }
  } finally {
    kvm.close(); // releases the VM, the guest_memfd and the mapping
  }
}
