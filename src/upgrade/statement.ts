/**
 * A release statement: what the owner signs to say "this package is realm release N for this
 * platform". The tarball itself travels as a blob; the statement names it by digest, so the
 * signature covers the package's bytes without the node trusting whoever handed them over.
 *
 * @example
 * const statement = releaseStatement({ version: 2, digest: 'sha256:…', platform: 'linux/x86_64', owner: key.publicKey });
 * const signature = signPayload(key.privateKey, statement);
 */
import { z } from 'zod';
import { RealmError } from '../util/errors.js';

export const RELEASE_KIND = 'realm-release';

/** The signed document; `kind` keeps a manifest's signature from passing as a release's. */
export const releaseStatementSchema = z
  .object({
    kind: z.literal(RELEASE_KIND),
    /** The release's number: a node installs only one above the one it runs. */
    version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    /** sha256 of the tarball, `sha256:HEX`. */
    digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    /** `linux/x86_64`, as nodes report theirs. */
    platform: z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+$/),
    /** The owner key that signs it (`realm-ed25519:…`): the same key is posted beside it. */
    owner: z.string().max(256),
  })
  .strict();
export type ReleaseStatement = z.infer<typeof releaseStatementSchema>;

export const postUpgradeSchema = z
  .object({
    /** The signed statement; checked after its signature. */
    statement: z.record(z.string(), z.unknown()),
    /** ed25519 over the statement's RFC 8785 canonical JSON, base64. */
    signature: z.string().max(256),
    /** Nodes to upgrade, by id (none and no tags: every node). */
    nodes: z.array(z.string().min(1).max(200)).max(1000).default([]),
    /** Nodes to upgrade, by tag (each must carry every tag). */
    tags: z.array(z.string().min(1).max(200)).max(100).default([]),
  })
  .strict();
export type PostUpgrade = z.output<typeof postUpgradeSchema>;

export function releaseStatement(s: Omit<ReleaseStatement, 'kind'>): ReleaseStatement {
  return { kind: RELEASE_KIND, ...s };
}

/** The statement's shape, checked (only after its signature was): UPGRADE_INVALID otherwise. */
export function parseStatement(raw: unknown): ReleaseStatement {
  const r = releaseStatementSchema.safeParse(raw);
  if (!r.success)
    throw new RealmError(
      'UPGRADE_INVALID',
      `the release statement is not one realm signs (${r.error.issues.map((i) => `${i.path.join('.') || 'statement'}: ${i.message}`).join('; ')}); make it with \`realm upgrade\``,
    );
  return r.data;
}
