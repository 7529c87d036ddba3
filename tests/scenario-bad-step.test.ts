/**
 * A step the runner refuses (a ScenarioError: a reserved GPA, nothing to resume, a name already
 * taken) makes no call that creates anything: the backend is left as it was, so a driver that goes
 * on after a bad step (the differential tester) sees the same kernel state on both sides.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createModelKvm } from '../src/model/index.js';
import { ScenarioError, Session, type Step } from '../src/scenario/index.js';

function refused(s: Session, step: Step): void {
  assert.throws(() => s.step(step), ScenarioError);
}

test('a refused run step creates no vCPU; a refused "as" creates no fd, mapping or VM', () => {
  const kvm = createModelKvm({ kernel: '6.18' });
  const s = new Session(kvm);
  const vm = kvm.vms[0];
  assert.ok(vm);
  refused(s, { op: 'run', vcpu: 0, program: [{ read: '0xffe00000', width: 1 }, 'hlt'] });
  refused(s, { op: 'run', vcpu: 1 });
  assert.equal(vm.vcpuIds.size, 0, 'no KVM_CREATE_VCPU for a refused step');
  const fds = s.kvm.files.dup(s.kvm.fd);
  s.kvm.files.close(fds);
  refused(s, { op: 'create_guest_memfd', size: 4096, as: 'vm' });
  refused(s, { op: 'memfd_create', as: 'kvm' });
  refused(s, { op: 'mmap_anonymous', length: 4096, as: 'vm' });
  refused(s, { op: 'create_vm', as: 'kvm' });
  // the lowest free fd is the one dup took before: nothing was opened in between
  const next = s.kvm.files.dup(s.kvm.fd);
  assert.equal(next, fds);
  assert.equal(kvm.vms.length, 1, 'no second VM');
  assert.equal(s.step({ op: 'run', vcpu: 0, program: ['hlt'] }).got, 'exit hlt');
  s.close();
});
