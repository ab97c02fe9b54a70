/** Image references and registry challenges. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRef, isLoopbackHost } from '../../src/images/ref.js';
import { parseChallenge } from '../../src/images/registry.js';
import { RealmError } from '../../src/util/errors.js';

const D = `sha256:${'a'.repeat(64)}`;

void describe('image references', () => {
  void it('parses names, tags, registries and digests', () => {
    assert.deepEqual(parseRef('busybox'), {
      ref: 'busybox:latest',
      registry: null,
      repository: 'busybox',
      tag: 'latest',
      digest: null,
    });
    assert.deepEqual(parseRef('127.0.0.1:5000/realm/bb:1'), {
      ref: '127.0.0.1:5000/realm/bb:1',
      registry: '127.0.0.1:5000',
      repository: 'realm/bb',
      tag: '1',
      digest: null,
    });
    assert.deepEqual(parseRef('localhost/x'), {
      ref: 'localhost/x:latest',
      registry: 'localhost',
      repository: 'x',
      tag: 'latest',
      digest: null,
    });
    assert.deepEqual(parseRef(`docker.io/library/alpine@${D}`), {
      ref: null,
      registry: 'docker.io',
      repository: 'library/alpine',
      tag: null,
      digest: D,
    });
    assert.deepEqual(parseRef(D), { ref: null, registry: null, repository: null, tag: null, digest: D });
    assert.equal(parseRef('a/b/c:v1.2-rc_3').ref, 'a/b/c:v1.2-rc_3');
  });

  void it('refuses what is not a reference', () => {
    for (const bad of [
      '',
      'Upper',
      'a b',
      '../x',
      'a//b',
      'x:',
      'x:-bad',
      `x@sha256:short`,
      'a/../b',
      '/abs',
      'x:y:z',
      'a'.repeat(300),
    ]) {
      assert.throws(
        () => parseRef(bad),
        (e: unknown) => e instanceof RealmError && e.code === 'IMAGE_INVALID',
        bad,
      );
    }
  });

  void it('knows loopback hosts and reads WWW-Authenticate challenges', () => {
    assert.ok(isLoopbackHost('127.0.0.1:5000') && isLoopbackHost('localhost') && isLoopbackHost('[::1]:80'));
    assert.ok(!isLoopbackHost('registry.example:5000') && !isLoopbackHost('10.0.0.1'));
    assert.deepEqual(
      parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'),
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
      },
    );
    assert.deepEqual(parseChallenge('Basic realm=x'), { scheme: 'basic', params: { realm: 'x' } });
  });
});
