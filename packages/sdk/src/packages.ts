/**
 * Packages: a `.realm` file (made by `realm package create DIR`) deployed as a service with its
 * mounts. The file goes to the blob store first (resumable, by digest), then the daemon unpacks
 * it in a sandbox and starts or upgrades the service.
 *
 * @example
 *   const c = new Client();
 *   const d = await c.packages.deploy('./site-1.0.0.realm');
 *   console.log(d.package.version, d.service?.healthy);
 */
import type { Client } from './client.js';
import type { BlobSource } from './blobs.js';
import type { PackageInfo, ServiceInfo } from './services.js';

export interface PackageDeployment {
  /** The service (or app, for a component). */
  name: string;
  kind: 'process' | 'wasm';
  package: PackageInfo;
  /** State volumes this deploy made and seeded (a later deploy leaves them be). */
  seeded: string[];
  /** The service as pushed; null for a component. */
  service: ServiceInfo | null;
}

export class Packages {
  constructor(private readonly c: Client) {}

  /** Upload a package (bytes, a path or a stream) and deploy it; `name` defaults to the package's. */
  async deploy(source: BlobSource, o: { name?: string } = {}): Promise<PackageDeployment> {
    // Unpinned: the service holds it while it runs this package.
    const blob = await this.c.blobs.put(source, { pin: false });
    return this.deployDigest(blob.digest, o);
  }

  /** Deploy a package already in the blob store. */
  deployDigest(digest: string, o: { name?: string } = {}): Promise<PackageDeployment> {
    return this.c.request<PackageDeployment>('POST', '/v1/packages', { digest, ...(o.name ? { name: o.name } : {}) });
  }
}
