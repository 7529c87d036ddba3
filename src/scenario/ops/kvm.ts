/** Ops on /dev/kvm and on a VM as a whole: KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_ENABLE_CAP. */
import { z } from 'zod';
import { VM_TYPE, type VmType } from '../../uapi/constants.js';
import { Int, Name, VmTypeName } from '../fields.js';
import { defineOp } from '../op.js';
import { capNumber, int, u32, u64 } from '../values.js';

const Cap = z.union([z.string().regex(/^KVM_CAP_[A-Z0-9_]+$/), Int]);
const fdResult = { describe: (v: { fd: number }) => `ok fd ${v.fd}`, result: (v: { fd: number }) => v.fd };

export const createVm = defineOp('create_vm', {
  fields: { type: VmTypeName.or(Int).optional(), as: Name },
  mirrors: '`KVM_CREATE_VM`',
  doc: '`type` (`"sw_protected"`, `"snp"`, ... or a number), `as`',
  makes: 'vm',
  run(ctx, s) {
    ctx.free(s.as);
    const type = s.type === undefined ? 'default' : typeof s.type === 'string' && s.type in VM_TYPE ? (s.type as VmType) : Number(int(s.type));
    const vm = ctx.kvm.createVm(type);
    ctx.name(s.as, { kind: 'vm', vm });
    return { fd: vm.fd };
  },
  ...fdResult,
  diff: {
    none: "a sequence drives the scenario's one VM; a second VM would double the real kernel's work per sequence and its bugs live in the single-VM calls drawn",
  },
});

export const getApiVersion = defineOp('get_api_version', {
  fields: {},
  mirrors: '`KVM_GET_API_VERSION` on /dev/kvm',
  doc: 'none; `{"expect":{"result":12}}` (`KVM_API_VERSION`, the same since 2.6.22)',
  run: (ctx) => ctx.kvm.apiVersion(),
  diff: 'generated',
});

export const checkExtension = defineOp('check_extension', {
  fields: { cap: Cap, scope: z.string().optional() },
  mirrors: '`KVM_CHECK_EXTENSION`',
  doc: '`cap` (`"KVM_CAP_GUEST_MEMFD_FLAGS"` or a number), `scope` (`"system"` or a VM name)',
  run(ctx, s) {
    const cap = capNumber(s.cap);
    return s.scope === undefined || s.scope === 'system' ? ctx.kvm.checkExtension(cap) : ctx.vm(s.scope).checkExtension(cap);
  },
  diff: 'generated',
});

export const enableCap = defineOp('enable_cap', {
  fields: { cap: Cap, args: z.array(Int).max(4).optional(), flags: Int.optional() },
  mirrors: '`KVM_ENABLE_CAP` on a VM',
  doc: '`cap`, `args`, `flags`',
  run(ctx, s) {
    return ctx.vm(s.vm).enableCap(capNumber(s.cap), (s.args ?? []).map(u64), s.flags === undefined ? 0 : u32(s.flags));
  },
  diff: 'generated',
});
