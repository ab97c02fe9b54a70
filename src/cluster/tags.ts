/** Node tags: `gpu`, `zone=eu-1`, `arch-arm`: short words an operator matches work against. */
import { RealmError } from '../util/errors.js';

const TAG_RE = /^[A-Za-z0-9][A-Za-z0-9_.=:-]{0,62}$/;

export function checkTag(tag: string): string {
  if (!TAG_RE.test(tag))
    throw new RealmError(
      'INVALID_REQUEST',
      `tag "${tag}": tags are letters, digits and _ . = : - (at most 63, starting with a letter or digit), e.g. gpu or zone=eu-1`,
    );
  return tag;
}

/** `tags` with `add` added and `remove` removed, sorted, each once. */
export function retag(tags: readonly string[], add: readonly string[], remove: readonly string[]): string[] {
  for (const t of [...add, ...remove]) checkTag(t);
  const out = new Set(tags);
  for (const t of add) out.add(t);
  for (const t of remove) out.delete(t);
  return [...out].sort();
}
