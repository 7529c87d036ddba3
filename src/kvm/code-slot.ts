/**
 * The code slot of a VM: anonymous memory bound at CODE_GPA as memslot CODE_SLOT, holding the page
 * tables and the guest programs its vCPUs run (guest/x86.ts), one program region per vCPU. Kept
 * apart from vm.ts so that the VM file is the VM ioctls and nothing else.
 */
import { CODE_GPA, CODE_SIZE, CODE_SLOT, type UserspaceMemoryRegion2 } from '../api.js';
import { CodeSlotImage, REGION_COUNT } from '../guest/x86.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../uapi/constants.js';
import { KvmMapping } from './mapping.js';
import { sys } from './sys.js';

export class CodeSlot {
  readonly mapping: KvmMapping;
  readonly image: CodeSlotImage;
  private nextRegion = 0;

  private constructor(mapping: KvmMapping, image: CodeSlotImage) {
    this.mapping = mapping;
    this.image = image;
  }

  /**
   * Map the slot's memory and bind it through the VM's own KVM_SET_USER_MEMORY_REGION2, so that its
   * errno reaches the caller unchanged; a refused bind leaves nothing mapped.
   */
  static create(vm: { setUserMemoryRegion2(r: UserspaceMemoryRegion2): void }): CodeSlot {
    const s = sys();
    const mapping = KvmMapping.map(CODE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0n, () => ({
      kind: 'anon',
    }));
    try {
      vm.setUserMemoryRegion2({
        slot: CODE_SLOT,
        flags: 0,
        guestPhysAddr: CODE_GPA,
        memorySize: CODE_SIZE,
        userspaceAddr: mapping.addr,
        guestMemfd: 0,
        guestMemfdOffset: 0n,
      });
    } catch (e) {
      mapping.unmap();
      throw e;
    }
    // The view lives exactly as long as the mapping: both are dropped together in unmap().
    return new CodeSlot(mapping, new CodeSlotImage(new Uint8Array(s.view(mapping.addr, Number(CODE_SIZE))), CODE_GPA));
  }

  /** A program region of the slot for a vCPU's programs. */
  allocRegion(): number {
    if (this.nextRegion >= REGION_COUNT) throw new RangeError(`at most ${REGION_COUNT} vCPUs of one VM can load programs`);
    return this.nextRegion++;
  }

  unmap(): void {
    this.mapping.unmap();
  }
}
