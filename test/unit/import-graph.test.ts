/**
 * The arrows of DESIGN.md's "Shape of the code", checked on the sources: no driver folder imports
 * another (shared code lives in src/drivers/shared/), the engine never imports the daemon, drivers
 * never import the engine, and the SDK imports nothing outside its own package.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The repository (this file runs as dist/test/unit/import-graph.test.js). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** One import of one file: repo-relative paths, the target with its .ts name. */
interface Edge {
  from: string;
  specifier: string;
  to: string;
}

/** Every .ts file under `dir` (repo-relative, '/' separated). */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const p = join(abs, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'dist') walk(p);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(relative(ROOT, p).split(sep).join('/'));
    }
  };
  walk(join(ROOT, dir));
  return out;
}

/** The relative imports (import, export … from, import(), side-effect imports) of one file. */
function edges(file: string): Edge[] {
  const info = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith('.'))
    .map((specifier) => ({
      from: file,
      specifier,
      to: join(dirname(file), specifier).split(sep).join('/').replace(/\.js$/, '.ts'),
    }));
}

/** The driver folder a path is in (`namespace`, `shared`, …), if any. */
const driverFolder = (p: string): string | undefined => /^src\/drivers\/([^/]+)\//.exec(p)?.[1];

/** Why this import breaks a rule, or undefined. */
export function violation(e: Edge): string | undefined {
  const [fromDriver, toDriver] = [driverFolder(e.from), driverFolder(e.to)];
  if (fromDriver && toDriver && fromDriver !== toDriver && toDriver !== 'shared') {
    return `driver folder ${fromDriver}/ imports driver folder ${toDriver}/ (shared code belongs in src/drivers/shared/)`;
  }
  if (e.from.startsWith('src/engine/') && e.to.startsWith('src/daemon/')) return 'the engine imports the daemon';
  if (e.from.startsWith('src/gateway/') && e.to.startsWith('src/daemon/')) return 'the gateway imports the daemon';
  if (e.from.startsWith('src/drivers/') && e.to.startsWith('src/engine/')) return 'a driver imports the engine';
  if (e.from.startsWith('packages/sdk/') && !e.to.startsWith('packages/sdk/')) return 'the SDK imports from outside its package';
  return undefined;
}

void test('the import graph keeps its arrows: driver folders apart, engine ↛ daemon, gateway ↛ daemon, drivers ↛ engine, SDK ↛ src', () => {
  const files = [...sources('src'), ...sources('packages/sdk/src')];
  assert.ok(
    files.some((f) => f.startsWith('src/drivers/shared/')) && files.some((f) => f.startsWith('packages/sdk/')),
    'the sources were found',
  );
  const bad = files.flatMap(edges).flatMap((e) => {
    const why = violation(e);
    return why ? [`${e.from} imports '${e.specifier}': ${why}`] : [];
  });
  assert.deepEqual(bad, []);
});

void test('the rules catch what they are meant to', () => {
  const edge = (from: string, specifier: string): Edge => ({
    from,
    specifier,
    to: join(dirname(from), specifier).replace(/\.js$/, '.ts'),
  });
  assert.match(
    violation(edge('src/drivers/gvisor/driver.ts', '../namespace/helper.js')) ?? '',
    /gvisor\/ imports driver folder namespace\//,
  );
  assert.match(
    violation(edge('src/drivers/shared/etc.ts', '../microvm/vm.js')) ?? '',
    /shared\/ imports driver folder microvm\//,
  );
  assert.equal(violation(edge('src/drivers/gvisor/driver.ts', '../shared/helper.js')), undefined);
  assert.equal(violation(edge('src/drivers/gvisor/driver.ts', '../driver.js')), undefined);
  assert.match(violation(edge('src/engine/engine.ts', '../daemon/serve.js')) ?? '', /engine imports the daemon/);
  assert.match(violation(edge('src/gateway/access.ts', '../daemon/browser-guard.js')) ?? '', /gateway imports the daemon/);
  assert.equal(violation(edge('src/gateway/access.ts', '../util/host.js')), undefined);
  assert.match(violation(edge('src/drivers/namespace/driver.ts', '../../engine/ids.js')) ?? '', /driver imports the engine/);
  assert.match(violation(edge('packages/sdk/src/client.ts', '../../../src/util/errors.js')) ?? '', /SDK imports from outside/);
  assert.equal(violation(edge('packages/sdk/src/client.ts', './errors.js')), undefined);
});
