/** One node alone, with no etcd: the node list is this node. */
import { RealmError } from '../util/errors.js';
import { retag } from './tags.js';
import type { NodeReport, NodeView, Nodes } from './types.js';

export class LocalNodes implements Nodes {
  readonly clustered = false;
  readonly fenced = false;
  private draining = false;
  private tags: string[];
  private readonly joinedAt = new Date().toISOString();

  constructor(
    readonly selfId: string,
    private readonly address: () => string,
    tags: string[],
    private readonly report: () => Promise<NodeReport>,
  ) {
    this.tags = retag([], tags, []);
  }

  async list(): Promise<NodeView[]> {
    return [await this.view()];
  }

  async get(id: string): Promise<NodeView> {
    if (id !== this.selfId) throw notFound(id);
    return this.view();
  }

  async drain(id: string, draining: boolean): Promise<NodeView> {
    if (id !== this.selfId) throw notFound(id);
    this.draining = draining;
    return this.view();
  }

  remove(id: string): Promise<never> {
    return Promise.reject(
      id === this.selfId
        ? new RealmError('NODE_UP', `node ${id} is this node, and it is up; a node alone has nothing to forget`)
        : notFound(id),
    );
  }

  async tag(id: string, add: string[], remove: string[]): Promise<NodeView> {
    if (id !== this.selfId) throw notFound(id);
    this.tags = retag(this.tags, add, remove);
    return this.view();
  }

  async recordSandbox(): Promise<void> {}

  async forgetSandbox(): Promise<void> {}

  lostSandboxes(): Promise<[]> {
    return Promise.resolve([]);
  }

  sandboxHome(): Promise<null> {
    return Promise.resolve(null);
  }

  invite(): Promise<never> {
    return Promise.reject(
      new RealmError(
        'INVALID_REQUEST',
        'this node works alone: start it with realm serve --cluster etcd://… to make a cluster it can invite nodes to',
      ),
    );
  }

  claimSandbox(): Promise<{ claimed: boolean; node: string }> {
    return Promise.resolve({ claimed: true, node: this.selfId });
  }

  scheduler(): Promise<string | null> {
    return Promise.resolve(this.selfId);
  }

  isPeer(): boolean {
    return false;
  }

  peerToken(): string {
    throw new Error('a node alone has no peers');
  }

  async close(): Promise<void> {}

  private async view(): Promise<NodeView> {
    return {
      id: this.selfId,
      address: this.address(),
      tags: this.tags,
      state: this.draining ? 'draining' : 'up',
      fenced: false,
      self: true,
      joinedAt: this.joinedAt,
      report: await this.report(),
    };
  }
}

export function notFound(id: string): RealmError {
  return new RealmError('NODE_NOT_FOUND', `no node "${id}"; \`realm node ls\` lists them`);
}
