/**
 * Who owns a sandbox, workspace, volume or token: the principal that made it, written `uid:N`
 * (the local user, known by SO_PEERCRED on the daemon's unix socket, or the uid that created the
 * token used over TCP). Root (`uid:0`) administers the node and sees everything; anyone else sees
 * only their own. Records from before owners were kept belong to root.
 */
export const ROOT_OWNER = 'uid:0';

export const uidOwner = (uid: number): string => `uid:${uid}`;

export function ownerOf(rec: { owner?: string | undefined }): string {
  return rec.owner ?? ROOT_OWNER;
}

/** Whether `principal` may see and touch a thing owned by `owner`. */
export function mayUse(principal: string, owner: string | undefined): boolean {
  return principal === ROOT_OWNER || (owner ?? ROOT_OWNER) === principal;
}
