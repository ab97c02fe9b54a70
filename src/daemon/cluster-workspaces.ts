/**
 * Workspaces in a cluster. A workspace lives on one node (its clone is a volume there); its name
 * is the cluster's: no two nodes hold workspaces of one name. Its sandbox is noted in etcd twice,
 * by id (as a sandbox made through the API is) and by its name `ws-NAME` (which only workspaces
 * hold), so any node finds either in one read, and a name noted on another node is refused here.
 */
import type { Context } from 'hono';
import type { NodeView, Nodes } from '../cluster/types.js';
import { type WorkspaceInfo, checkWorkspaceName, workspaceSandbox } from '../engine/workspaces.js';
import { RealmError, errorMessage } from '../util/errors.js';
import type { Constraints } from '../cluster/types.js';
import type { Wanted } from './cluster-peers.js';
import { sandboxView, workspaceView } from './views.js';
import { visible } from './access.js';
import { log } from '../logs/log.js';

/** Workspace `name` among the notes in etcd and at its route. */
export function wantedWorkspace(name: string): Wanted {
  return { note: workspaceSandbox(name), path: `/v1/workspaces/${encodeURIComponent(name)}`, what: `workspace ${name}` };
}

/** The workspace name an open (POST /v1/workspaces) body gives; none when it gives none that is one (the route refuses it). */
export function nameOpened(body: Buffer): string | undefined {
  try {
    const name = (JSON.parse(body.toString('utf8')) as { name?: unknown }).name;
    if (typeof name !== 'string') return undefined;
    checkWorkspaceName(name);
    return name;
  } catch {
    return undefined; // the route answers the bad JSON or name
  }
}

/** A workspace that exists opens where it lives: a placement that excludes that node is refused, not ignored. */
export function resumable(name: string, home: NodeView, want: Constraints): void {
  const missing = want.tags.filter((t) => !home.tags.includes(t));
  const other = want.node !== undefined && want.node !== home.id;
  if (!other && !missing.length) return;
  throw new RealmError(
    'NO_NODE_FITS',
    `workspace ${name} lives on node ${home.id}${other ? '' : ` (no tag ${missing.join(', ')})`} and opens there: drop --node/--tag to resume it, or delete it (realm ws ${name} --delete) to make it elsewhere`,
  );
}

/**
 * Before this node makes workspace `name`: the name claimed in etcd for this node, create-only,
 * so two nodes making one name at once cannot both win; refused when another node holds it
 * (names are the cluster's). Returns how to give the claim back when the make fails.
 */
export async function claimName(nodes: Nodes, name: string, owner: string): Promise<() => Promise<void>> {
  const { claimed, node } = await nodes.claimSandbox(workspaceSandbox(name), owner, { name, claimed: true });
  if (claimed) return () => nodes.forgetSandbox(workspaceSandbox(name)).catch(unrecorded);
  throw new RealmError(
    'SANDBOX_NAME_TAKEN',
    `a workspace named ${name} lives on node ${node} (workspace names are the cluster's); pick another workspace name (one of yours there resumes with \`realm ws ${name}\` without --node/--tag)`,
  );
}

/**
 * Note the workspace in etcd: its sandbox by id (as any sandbox made through the API), and the
 * workspace itself by name. While its node is down both are listed as lost.
 */
export async function noteWorkspace(nodes: Nodes, w: WorkspaceInfo, owner: string): Promise<void> {
  await Promise.all([
    nodes.recordSandbox(w.sandbox.id, owner, sandboxView(w.sandbox)),
    nodes.recordSandbox(workspaceSandbox(w.name), owner, workspaceView(w)),
  ]).catch(unrecorded);
}

/** The caller's workspaces on nodes that are down, as noted when last opened: lost unless their node comes back. */
export async function lostWorkspaces(c: Context, nodes: Nodes): Promise<Record<string, unknown>[]> {
  return (await nodes.lostSandboxes().catch(() => []))
    .filter((n) => isWorkspaceView(n.view) && visible(c, n.owner))
    .map((n) => ({ ...n.view, sandbox: { ...(n.view.sandbox as object), status: 'lost' }, node: n.node }));
}

/** A note's view that is a workspace's (its note by name), not a sandbox's. */
function isWorkspaceView(view: Record<string, unknown>): boolean {
  return typeof view.name === 'string' && typeof view.sandbox === 'object' && view.sandbox !== null;
}

/** The workspace is gone: its notes go. */
export async function forgetWorkspace(nodes: Nodes, name: string, sandboxId: string | undefined): Promise<void> {
  await Promise.all([nodes.forgetSandbox(workspaceSandbox(name)), ...(sandboxId ? [nodes.forgetSandbox(sandboxId)] : [])]).catch(
    unrecorded,
  );
}

/** etcd did not take the note: the workspace is still found by asking the other nodes. */
function unrecorded(e: unknown): void {
  log.warn(`noting a workspace in etcd: ${errorMessage(e)}`);
}
