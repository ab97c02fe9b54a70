/** Which host a workspace's origin is reached at, as an allow rule. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ALLOW, remoteRule } from '../../src/engine/workspace-net.js';
import { parseRule } from '../../src/net/policy.js';

void test('git remote URLs become allow rules for their host and port', () => {
  assert.equal(remoteRule('https://github.com/team/app.git'), 'github.com:443');
  assert.equal(remoteRule('http://git.example.com:8080/app'), 'git.example.com:8080');
  assert.equal(remoteRule('ssh://git@git.example.com:2222/app.git'), 'git.example.com:2222');
  assert.equal(remoteRule('git@github.com:team/app.git'), 'github.com:22');
  assert.equal(remoteRule('github.com:team/app.git'), 'github.com:22');
  assert.equal(remoteRule('git://example.org/app'), 'example.org:9418');
  assert.equal(remoteRule('https://[2001:db8::1]/app'), '[2001:db8::1]:443');
  for (const local of ['', '/srv/git/app.git', './app', 'file:///srv/app']) assert.equal(remoteRule(local), null, local);
  for (const r of DEFAULT_ALLOW) assert.ok(parseRule(r), r);
});
