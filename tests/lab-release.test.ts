/** The lab's report names a release the model's profile does not describe (src/lab/collect.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unknownRelease } from '../src/lab/collect.js';

test('a lab kernel whose release differs from its profile is reported; the described one is not', () => {
  assert.equal(unknownRelease('6.12', '6.12.118-1~deb12u1'), undefined);
  assert.equal(unknownRelease('7.3', '7.3.4+bpo-amd64'), undefined);
  assert.match(unknownRelease('6.12', '6.12.120-amd64') ?? '', /6\.12\.120.*describes 6\.12\.118/);
  assert.match(unknownRelease('6.20', '6.20.1') ?? '', /no model profile/);
  assert.match(unknownRelease('7.3', undefined) ?? '', /did not report/);
});
