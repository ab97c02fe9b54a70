/**
 * Records an older realm wrote, brought to today's shape once when a store opens.
 *
 * Workspaces were once known by a label (`realm.workspace`) on a sandbox named `ws-NAME`, which
 * any API caller could also set; they are now known by the record's `workspace` field, which only
 * Workspaces sets. A record the older realm made as a workspace (name and label agree) becomes
 * one, with its volume; the labels go.
 */
import type { SandboxRecord, VolumeRecord } from './store.js';

const LEGACY_WORKSPACE_LABEL = 'realm.workspace';
const LEGACY_PROJECT_LABEL = 'realm.project';

/** The sandbox as a workspace and the name of its volume, or null when it is not a legacy workspace. */
export function migrateLegacyWorkspace(rec: SandboxRecord): { sandbox: SandboxRecord; name: string; volume: string } | null {
  const name = rec.labels[LEGACY_WORKSPACE_LABEL];
  if (rec.workspace || name === undefined || rec.name !== `ws-${name}`) return null;
  const labels = { ...rec.labels };
  const project = labels[LEGACY_PROJECT_LABEL] ?? '';
  delete labels[LEGACY_WORKSPACE_LABEL];
  delete labels[LEGACY_PROJECT_LABEL];
  return { sandbox: { ...rec, labels, workspace: { name, project } }, name, volume: `ws-${name}` };
}

/** The volume marked as the clone of workspace `name`. */
export function markWorkspaceVolume(vol: VolumeRecord, name: string): VolumeRecord {
  return { ...vol, workspace: { name } };
}
