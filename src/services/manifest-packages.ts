/**
 * Services from packages in a signed manifest (`[services.NAME]` with `package` or
 * `package_sha256`): what apply does to them. The package is named by the sha256 of its `.realm`
 * file; `realm apply` uploads the file to the blob store (or the node has it already: a package it
 * deployed, or uploaded before), and the node reads it by that digest and hashes what it read
 * again. Every packaged service is read and checked as `realm package deploy` checks one (the
 * archive, its manifest, its service, its state volumes) before anything changes; then each is
 * deployed as `package deploy` does it: static and config trees stored by content, state volumes
 * seeded on the first deploy only (a new package version keeps them), the service pushed with its
 * mounts and rolled out. A changed replica count alone is a scale.
 */
import type { Deployment, Packages, ReadyPackage } from '../packages/deploy.js';
import { RealmError } from '../util/errors.js';
import type { ManifestPackageService } from './manifest-spec.js';
import type { ServiceRecord } from './spec.js';

export type PackageStep = { kind: 'deploy-package'; name: string; ready: ReadyPackage };

/** A packaged service record in manifest form: its package by digest, and its replica count. */
export function packagedOf(rec: ServiceRecord & { package: NonNullable<ServiceRecord['package']> }): ManifestPackageService {
  return { package_sha256: rec.package.digest.replace(/^sha256:/, ''), replicas: rec.spec.replicas };
}

/**
 * Read and check service `name`'s package for a manifest, writing nothing: MANIFEST_DIGEST_MISMATCH
 * when the node has no package of the signed digest or its bytes are not that digest; a component
 * package (a gateway app, not a service) and what `package deploy` refuses, refused naming the service.
 */
export async function planPackage(
  packages: Packages | undefined,
  name: string,
  entry: ManifestPackageService,
  who: string,
): Promise<PackageStep> {
  const at = `services.${name}.package_sha256`;
  if (!packages)
    throw new RealmError('MANIFEST_INVALID', `${at}: this daemon deploys no packages (it runs without a blob store)`);
  const digest = `sha256:${entry.package_sha256}`;
  let ready: ReadyPackage;
  try {
    ready = await packages.ready(digest, who, name, { replicas: entry.replicas });
  } catch (e) {
    if (e instanceof RealmError && e.code === 'BLOB_NOT_FOUND')
      throw new RealmError(
        'MANIFEST_DIGEST_MISMATCH',
        `${at}: this node has no package ${digest} and none was uploaded; name its file in the TOML (package = "app.realm") so \`realm apply\` uploads it`,
      );
    if (e instanceof RealmError) throw new RealmError(e.code, `services.${name}: ${e.message}`, e.details);
    throw e;
  }
  // What is deployed is exactly what was signed: the bytes read are hashed again.
  if (ready.scanned.digest !== digest)
    throw new RealmError(
      'MANIFEST_DIGEST_MISMATCH',
      `${at}: the package read is ${ready.scanned.digest}, not ${digest} as signed; sign the package you mean to deploy`,
    );
  const { manifest } = ready.scanned;
  if (manifest.service.component !== undefined)
    throw new RealmError(
      'PACKAGE_INVALID',
      `${at}: package ${manifest.name} ${manifest.version} is a wasm component, which the gateway serves as an app; put its component in the manifest as [apps.${name}] with file = "${manifest.service.component.split('/').pop() ?? 'app.wasm'}"`,
    );
  return { kind: 'deploy-package', name, ready };
}

/** Deploy a planned package (the manifest's checks all passed). */
export function deployPackage(packages: Packages | undefined, step: PackageStep): Promise<Deployment> {
  if (!packages) throw new Error('planPackage refuses packages on a daemon without them');
  return packages.deployReady(step.ready);
}
