/**
 * scenarios/v7/ on the model with the designs registry, invariants checked after every step; that
 * the files between them exercise every uAPI element V7-DESIGN.md names for each patch of the v7
 * series (and the negotiated variant's rule), each by a step that would fail if the element were
 * missing or wrong; and how a backend without the registry treats a scenario's "design" field (it
 * skips, never fails).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { DESIGNS } from '../../src/designs/registry.js';
import { type Backend, modelBackend, parseScenario, runScenario } from '../../src/scenario/index.js';
import { ROOT, SCENARIOS, scenarioFiles } from '../support/files.js';

const files = scenarioFiles(join(SCENARIOS, 'v7'));

type RawStep = Record<string, unknown> & { op: string };
interface RawScenario {
  file: string;
  design?: string;
  steps: RawStep[];
}
const raw: RawScenario[] = files.map((f) => {
  const d = JSON.parse(readFileSync(f, 'utf8')) as { design?: string; steps: RawStep[] };
  return { file: relative(ROOT, f), ...(d.design !== undefined && { design: d.design }), steps: d.steps };
});

type Expect = { errno?: string; fault?: string; exit?: string; result?: unknown; fstat?: { blocks?: unknown }; memory_fault?: { flags?: unknown } };
const expectOf = (s: RawStep): Expect => (s.expect ?? {}) as Expect;
/** the step is expected to succeed (no errno, no fault) */
const ok = (s: RawStep) => expectOf(s).errno === undefined && expectOf(s).fault === undefined;
const errno = (s: RawStep, e: string) => expectOf(s).errno === e;
/** a flags field names `name` or has `bit` set */
const hasFlag = (v: unknown, name: string, bit: number) => (Array.isArray(v) ? v.includes(name) : Number(v ?? 0) & bit) !== 0 && v !== undefined;
const num = (v: unknown) => (v === undefined ? undefined : Number(v));
/** fds (their `as` names) that memfd_create made with MFD_INACCESSIBLE */
const inaccessibleFds = (sc: RawScenario) =>
  new Set(sc.steps.filter((s) => s.op === 'memfd_create' && ok(s) && hasFlag(s.flags, 'inaccessible', 0x8)).map((s) => s.as as string));
/** step `a` matching, then later step `b` matching (b sees a) */
const then = (sc: RawScenario, a: (s: RawStep) => boolean, b: (s: RawStep, first: RawStep) => boolean) =>
  sc.steps.some((s, i) => a(s) && sc.steps.slice(i + 1).some((t) => b(t, s)));
const anyStep = (pred: (s: RawStep, sc: RawScenario) => boolean, design = 'v7') => raw.some((sc) => sc.design === design && sc.steps.some((s) => pred(s, sc)));
const anyFile = (pred: (sc: RawScenario) => boolean, design = 'v7') => raw.some((sc) => sc.design === design && pred(sc));
const privateSlot = (s: RawStep) => s.op === 'set_user_memory_region_ext' && hasFlag(s.flags, 'private', 1 << 2) && ok(s);

/**
 * Each patch of the series that V7-DESIGN.md names (§1.2 uAPI and its behaviour table, §1.3
 * memfile_notifier), with the uAPI elements it added and the step that shows each at work.
 */
const PARTS: { patch: string; element: string; exercised: () => boolean }[] = [
  {
    patch: '01/14 mm: Add F_SEAL_AUTO_ALLOCATE seal to memfd',
    element: 'F_SEAL_AUTO_ALLOCATE (0x0020) added with F_ADD_SEALS, then a mapped store to a hole is SIGBUS (shmem_fault SGP_NOALLOC)',
    exercised: () =>
      anyFile((sc) =>
        then(
          sc,
          (s) => s.op === 'fcntl' && s.cmd === 'add_seals' && hasFlag(s.seals, 'auto_allocate', 0x20) && ok(s),
          (t) => t.op === 'host_write' && expectOf(t).fault === 'SIGBUS',
        ),
      ),
  },
  {
    patch: '01/14 mm: Add F_SEAL_AUTO_ALLOCATE seal to memfd',
    element: 'write() into a hole of a sealed memfd fails (shmem_write_begin SGP_NOALLOC: ENOENT), F_GET_SEALS reports 0x20',
    exercised: () =>
      anyFile(
        (sc) =>
          then(
            sc,
            (s) => s.op === 'fcntl' && s.cmd === 'add_seals' && hasFlag(s.seals, 'auto_allocate', 0x20) && ok(s),
            (t) => t.op === 'write' && errno(t, 'ENOENT'),
          ) && sc.steps.some((s) => s.op === 'fcntl' && s.cmd === 'get_seals' && num(expectOf(s).result) === 0x20),
      ),
  },
  {
    patch: '03/14 mm: Introduce memfile_notifier (+ 13/14 the KVM callback)',
    element: 'invalidate: a punch hole in a bound private fd, then the guest runs on the zapped GFNs',
    exercised: () =>
      anyFile((sc) =>
        then(
          sc,
          privateSlot,
          (t, slot) =>
            t.op === 'fallocate' &&
            t.fd === slot.private_fd &&
            hasFlag(t.mode, 'punch_hole', 0x2) &&
            ok(t) &&
            sc.steps.slice(sc.steps.indexOf(t) + 1).some((u) => u.op === 'run' && ok(u)),
        ),
      ),
  },
  ...(
    [
      ['read', 'read() of an inaccessible file is EPERM (shmem_file_read_iter)'],
      ['write', 'write() of an inaccessible file is EPERM (shmem_write_begin)'],
      ['mmap', 'mmap() of an inaccessible file is EPERM (shmem_mmap)'],
    ] as const
  ).map(([op, element]) => ({
    patch: '04/14 mm/shmem: Support memfile_notifier',
    element,
    exercised: () => anyStep((s, sc) => s.op === op && inaccessibleFds(sc).has(s.fd as string) && errno(s, 'EPERM')),
  })),
  {
    patch: '04/14 mm/shmem: Support memfile_notifier',
    element: 'ftruncate of an inaccessible file only from size 0 (EPERM once sized), to a page multiple (EINVAL)',
    exercised: () =>
      anyFile((sc) => {
        const fds = inaccessibleFds(sc);
        const tr = sc.steps.filter((s) => s.op === 'ftruncate' && fds.has(s.fd as string));
        return tr.some((s) => errno(s, 'EPERM')) && tr.some((s) => errno(s, 'EINVAL')) && tr.some(ok);
      }),
  },
  {
    patch: '05/14 mm/memfd: Introduce MFD_INACCESSIBLE flag',
    element: 'memfd_create(MFD_INACCESSIBLE = 0x0008) succeeds; with MFD_ALLOW_SEALING it is EINVAL',
    exercised: () =>
      anyStep((s) => s.op === 'memfd_create' && hasFlag(s.flags, 'inaccessible', 0x8) && ok(s)) &&
      anyStep((s) => s.op === 'memfd_create' && hasFlag(s.flags, 'inaccessible', 0x8) && hasFlag(s.flags, 'allow_sealing', 0x2) && errno(s, 'EINVAL')),
  },
  {
    patch: '09/14 KVM: Extend the memslot to support fd-based private memory',
    element: 'kvm_userspace_memory_region_ext with KVM_MEM_PRIVATE (1 << 2), private_fd and private_offset; an unaligned private_offset is EINVAL',
    exercised: () =>
      anyStep((s) => privateSlot(s) && s.private_fd !== undefined && s.private_offset !== undefined) &&
      anyStep(
        (s) => s.op === 'set_user_memory_region_ext' && hasFlag(s.flags, 'private', 1 << 2) && Number(s.private_offset) % 4096 !== 0 && errno(s, 'EINVAL'),
      ),
  },
  {
    patch: '10/14 KVM: Add KVM_EXIT_MEMORY_FAULT exit',
    element: 'KVM_EXIT_MEMORY_FAULT (37) with KVM_MEMORY_EXIT_FLAG_PRIVATE (1 << 0) set for a private access and clear for a shared one',
    exercised: () =>
      anyStep((s) => s.op === 'run' && expectOf(s).exit === 'memory_fault' && hasFlag(expectOf(s).memory_fault?.flags, 'private', 1)) &&
      anyStep(
        (s) =>
          s.op === 'run' &&
          expectOf(s).exit === 'memory_fault' &&
          expectOf(s).memory_fault?.flags !== undefined &&
          !hasFlag(expectOf(s).memory_fault?.flags, 'private', 1),
      ),
  },
  {
    patch: '11/14 KVM: Register/unregister the guest private memory regions',
    element: 'KVM_MEMORY_ENCRYPT_REG_REGION / UNREG_REGION with GPA semantics; size 0 is EINVAL',
    exercised: () =>
      anyStep((s) => s.op === 'memory_encrypt_reg_region' && ok(s)) &&
      anyStep((s) => s.op === 'memory_encrypt_unreg_region' && ok(s)) &&
      anyStep((s) => s.op === 'memory_encrypt_reg_region' && num(s.size) === 0 && errno(s, 'EINVAL')),
  },
  {
    patch: '12/14 KVM: Handle page fault for private memory',
    element: 'a private guest access is served through get_pfn: the private fd gains pages only by the guest running',
    exercised: () =>
      anyFile((sc) =>
        then(sc, privateSlot, (t, slot) => {
          const i = sc.steps.indexOf(t);
          const before = sc.steps.slice(0, i);
          const allocated = before.some((u) => u.op === 'fallocate' && u.fd === slot.private_fd && !hasFlag(u.mode, 'punch_hole', 0x2));
          return (
            t.op === 'fstat' &&
            t.fd === slot.private_fd &&
            Number(expectOf(t).fstat?.blocks ?? 0) > 0 &&
            !allocated &&
            before.some((u) => u.op === 'memory_encrypt_reg_region' && ok(u)) &&
            before.some((u) => u.op === 'run' && expectOf(u).exit === 'hlt')
          );
        }),
      ),
  },
  {
    patch: '13/14 KVM: Enable and expose KVM_MEM_PRIVATE',
    element: 'KVM_MEM_PRIVATE on a VM without private memory (kvm_arch_private_mem_supported false) is EINVAL',
    exercised: () =>
      anyStep((s, sc) => {
        const defaults = new Set(sc.steps.filter((c) => c.op === 'create_vm' && c.type === 'default').map((c) => c.as));
        return s.op === 'set_user_memory_region_ext' && defaults.has(s.vm as string) && hasFlag(s.flags, 'private', 1 << 2) && errno(s, 'EINVAL');
      }),
  },
  {
    patch: 'negotiated (David Hildenbrand on 05/14, V7-DESIGN §1.5)',
    element: 'no MFD_INACCESSIBLE (EINVAL); binding a mapped file is refused (EBUSY); once bound the plain memfd is inaccessible (EPERM)',
    exercised: () =>
      anyStep((s) => s.op === 'memfd_create' && hasFlag(s.flags, 'inaccessible', 0x8) && errno(s, 'EINVAL'), 'negotiated') &&
      anyStep((s) => s.op === 'set_user_memory_region_ext' && errno(s, 'EBUSY'), 'negotiated') &&
      anyFile((sc) => then(sc, privateSlot, (t) => (t.op === 'mmap' || t.op === 'write' || t.op === 'pread') && errno(t, 'EPERM')), 'negotiated'),
  },
];

describe('scenarios/v7 on the designs', () => {
  const backend = modelBackend({ designs: DESIGNS });
  for (const file of files) {
    const rel = relative(ROOT, file);
    test(rel, () => {
      const sc = parseScenario(readFileSync(file, 'utf8'), rel);
      assert.ok(sc.design, 'a v7 scenario names its design');
      const r = runScenario(sc, rel, backend);
      assert.equal(r.status, 'passed', `${r.reason}\n${r.steps.map((s) => `  [${s.index}] ${s.op}: ${s.got}${s.reason ? ` <- ${s.reason}` : ''}`).join('\n')}`);
    });
  }
  test('every scenario names a design that has its own kernel (v7 or negotiated)', () => {
    for (const sc of raw) assert.ok(sc.design === 'v7' || sc.design === 'negotiated', `${sc.file}: design ${sc.design}`);
  });
});

describe('every part of the series is exercised by a scenario step', () => {
  for (const p of PARTS) {
    test(`${p.patch}: ${p.element}`, () => {
      assert.ok(p.exercised(), `no step in scenarios/v7 exercises ${p.element}`);
    });
  }
  test("the coverage checks can fail: with every scenario's steps emptied, none holds", () => {
    const saved = raw.map((sc) => sc.steps);
    try {
      for (const sc of raw) sc.steps = [];
      for (const p of PARTS) assert.equal(p.exercised(), false, p.element);
    } finally {
      raw.forEach((sc, i) => {
        sc.steps = saved[i] as RawStep[];
      });
    }
  });
});

test('without the registry the model backend skips a v7 scenario and says why', () => {
  const file = join(SCENARIOS, 'v7/mfd-inaccessible.json');
  const r = runScenario(parseScenario(readFileSync(file, 'utf8'), file), file, modelBackend());
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /^requires design:v7: the designs registry/);
});

test('a backend with no designs at all (the real kernel) skips v7 scenarios and runs design guest_memfd ones', () => {
  const model = modelBackend();
  const bare: Backend = { name: 'kvm', numaNodes: 1, open: (k) => model.open(k) };
  const file = join(SCENARIOS, 'v7/enc-region.json');
  const r = runScenario(parseScenario(readFileSync(file, 'utf8'), file), file, bare);
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /^requires design:v7: a model variant/);
  const gm = parseScenario(
    JSON.stringify({ name: 'gm', design: 'guest_memfd', vm: { type: 'sw_protected' }, steps: [{ op: 'create_guest_memfd', size: 4096 }] }),
    'gm.json',
  );
  assert.equal(runScenario(gm, 'gm.json', bare).status, 'passed');
});

test('v7 and negotiated have their own kernel: a scenario naming another kernel is skipped', () => {
  const sc = parseScenario(JSON.stringify({ name: 'k', design: 'v7', kernel: '6.18', steps: [{ op: 'memfd_create', as: 'm' }] }), 'k.json');
  const r = runScenario(sc, 'k.json', modelBackend({ designs: DESIGNS }));
  assert.equal(r.status, 'skipped');
  assert.match(r.reason ?? '', /own kernel/);
});

test('design ops on a backend whose objects lack them are scenario errors, not invented errnos', () => {
  const sc = parseScenario(
    JSON.stringify({ name: 'x', vm: { type: 'sw_protected' }, steps: [{ op: 'memory_encrypt_reg_region', addr: 0, size: 4096 }] }),
    'x.json',
  );
  const r = runScenario(sc, 'x.json', modelBackend());
  assert.equal(r.status, 'failed');
  assert.match(r.reason ?? '', /memoryEncryptRegRegion/);
  // the _ext struct on an upstream kernel is the v1 ioctl with bit 2 set: EINVAL, as the kernel says
  const ext = parseScenario(
    JSON.stringify({
      name: 'e',
      vm: { type: 'sw_protected' },
      steps: [
        { op: 'mmap_anonymous', length: 4096, as: 's' },
        {
          op: 'set_user_memory_region_ext',
          slot: 0,
          flags: ['private'],
          guest_phys_addr: 0,
          memory_size: 4096,
          userspace_addr: 's',
          expect: { errno: 'EINVAL' },
        },
      ],
    }),
    'e.json',
  );
  assert.equal(runScenario(ext, 'e.json', modelBackend()).status, 'passed');
});
