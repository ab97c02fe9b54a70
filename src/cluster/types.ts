/** What the cluster (or a lone node) tells about its nodes: one shape for the API, SDK and CLI. */

export type NodeState = 'up' | 'down' | 'draining';

/** What a node reports of itself, refreshed every few seconds while it is up. */
export interface NodeReport {
  version: string;
  /** `linux/x86_64`. */
  platform: string;
  hostname: string;
  /** The drivers this node can run (probed). */
  drivers: string[];
  /** `jobs`: job attempts it runs at once. */
  capacity: { cpus: number; memoryBytes: number; sandboxes: number; jobs?: number };
  load: { sandboxes: number; loadAvg1: number };
  startedAt: string;
  /** Its lease's TTL (`realm serve --lease-ttl`), in ms; absent from a node of an older release. */
  leaseTtlMs?: number;
}

export interface NodeView {
  id: string;
  /** Where other nodes (and clients) reach its API. */
  address: string;
  tags: string[];
  state: NodeState;
  /** Up but without an answer from etcd for half its lease: it takes no new work until etcd answers. */
  fenced: boolean;
  /** The node that answered the request. */
  self: boolean;
  joinedAt: string;
  /** Its last report; null when it is down. */
  report: NodeReport | null;
}

/** Where a request may be placed: every field must hold. */
export interface Constraints {
  node?: string | undefined;
  tags: string[];
  driver?: string | undefined;
  /** `OS/ARCH` (linux/amd64 and linux/x86_64 are one): only a node of that platform fits. */
  platform?: string | undefined;
  /** What one sandbox of the request asks for: a node smaller than that cannot take it. */
  memoryBytes?: number | undefined;
  cpus?: number | undefined;
}

/** A sandbox as noted in etcd when it was made. */
export interface NotedSandbox {
  node: string;
  owner: string;
  view: Record<string, unknown>;
}

/** The cluster as the daemon sees it: one node alone (no etcd), or every member of an etcd cluster. */
export interface Nodes {
  /** This node's id. */
  readonly selfId: string;
  /** On etcd (forwarding and placement across nodes), or alone. */
  readonly clustered: boolean;
  /** Cut off from etcd (no answer for half the lease): take no new work. */
  readonly fenced: boolean;
  list(): Promise<NodeView[]>;
  get(id: string): Promise<NodeView>;
  drain(id: string, draining: boolean): Promise<NodeView>;
  /** Forget a node that is down (retired): its member key and its sandboxes' notes. */
  remove(id: string): Promise<void>;
  tag(id: string, add: string[], remove: string[]): Promise<NodeView>;
  /** Note where a sandbox lives, with its view as made (cluster only: a lone node knows its own). */
  recordSandbox(id: string, owner: string, view: Record<string, unknown>): Promise<void>;
  forgetSandbox(id: string): Promise<void>;
  /**
   * Note `id` for this node only if no node has it noted (create-only): the node that holds it
   * otherwise. Names that are the cluster's (workspaces) are claimed so before they are made.
   */
  claimSandbox(id: string, owner: string, view: Record<string, unknown>): Promise<{ claimed: boolean; node: string }>;
  /** Where a recorded sandbox lives, and whose it is; null when none is recorded. */
  sandboxHome(id: string): Promise<{ node: string; owner: string } | null>;
  /** The sandboxes noted on nodes that are down now: lost unless their node comes back. */
  lostSandboxes(): Promise<NotedSandbox[]>;
  /** A one-time token that enrolls a new node (`realm serve --join`), valid for `ttlSeconds`. */
  invite(ttlSeconds: number): Promise<{ token: string; expiresAt: string }>;
  /** The node whose scheduler places jobs now (this node, alone); null while none leads. */
  scheduler(): Promise<string | null>;
  /** Whether a forwarded request carries a peer's credential (cluster only). */
  isPeer(token: string): boolean;
  /** The credential this node sends with requests it forwards. */
  peerToken(): string;
  close(): Promise<void>;
}
