/**
 * The cluster's nodes (a lone daemon is a cluster of one): list, inspect, drain, tag. Any node
 * answers for all of them.
 *
 * @example
 *   const c = new Client();
 *   for (const n of await c.nodes.list()) console.log(n.id, n.state, n.tags);
 *   await c.nodes.tag('node-b', { add: ['gpu'] });
 */
import type { Client } from './client.js';

export type NodeState = 'up' | 'down' | 'draining';

export interface NodeReport {
  version: string;
  platform: string;
  hostname: string;
  drivers: string[];
  capacity: { cpus: number; memoryBytes: number; sandboxes: number };
  load: { sandboxes: number; loadAvg1: number };
  startedAt: string;
  /** Its lease's TTL in ms (`realm serve --lease-ttl`); absent from a node of an older release. */
  leaseTtlMs?: number;
}

export interface ClusterNode {
  id: string;
  address: string;
  tags: string[];
  state: NodeState;
  /** Cut off from etcd for half its lease: it takes no new work until etcd answers. */
  fenced: boolean;
  /** The node that answered. */
  self: boolean;
  joinedAt: string;
  /** Its last report; null while it is down. */
  report: NodeReport | null;
}

const enc = encodeURIComponent;

export class Nodes {
  constructor(private readonly c: Client) {}

  async list(): Promise<ClusterNode[]> {
    return (await this.c.request<{ nodes: ClusterNode[] }>('GET', '/v1/nodes')).nodes;
  }

  get(id: string): Promise<ClusterNode> {
    return this.c.request<ClusterNode>('GET', `/v1/nodes/${enc(id)}`);
  }

  /** No new work goes to it (what runs there goes on); `false` takes work again. Admin only. */
  drain(id: string, draining = true): Promise<ClusterNode> {
    return this.c.request<ClusterNode>('POST', `/v1/nodes/${enc(id)}/drain`, { draining });
  }

  /** Forget a retired node (only one that is down). Admin only. */
  async remove(id: string): Promise<void> {
    await this.c.request('DELETE', `/v1/nodes/${enc(id)}`);
  }

  /** A one-time token that enrolls one new node (`realm serve --cluster … --join TOKEN`). Admin only. */
  invite(opts: { ttl?: string | number } = {}): Promise<{ token: string; expiresAt: string }> {
    return this.c.request('POST', '/v1/cluster/invites', opts.ttl !== undefined ? { ttl: opts.ttl } : {});
  }

  /** Add and remove tags. Admin only. */
  tag(id: string, change: { add?: string[]; remove?: string[] }): Promise<ClusterNode> {
    return this.c.request<ClusterNode>('POST', `/v1/nodes/${enc(id)}/tags`, {
      add: change.add ?? [],
      remove: change.remove ?? [],
    });
  }
}
