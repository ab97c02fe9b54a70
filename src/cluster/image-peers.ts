/**
 * Images this node lacks, brought on demand from another node of the cluster that has them: a
 * sandbox, run or job placed here with an image only node A holds gets it from A.
 *
 * - Asked over the peer's own API (`GET /v1/images/:ref/export`: an OCI archive of the image under
 *   the name asked for), as the node's admin with the peer credential, marked as forwarded so the
 *   peer answers from its own store and asks no further.
 * - Never trusting the peer's bytes: the archive goes through the ordinary import, which stages
 *   every blob, checks it against the digest and size its manifest gives (the manifest and config
 *   by the digests that name them) and commits only a whole, sound image; on any failure nothing
 *   is kept, and the next node is tried.
 * - The image is then this node's like any imported one, under the same name: it stays until
 *   `realm image rm` / `prune` here; names are per node (retagging on A later does not move B's).
 * - Nodes that are up (or draining) other than this one are asked in turn; one that answers 404
 *   or does not answer is skipped. None has it: false, and the caller's IMAGE_NOT_FOUND stands;
 *   one had it but it did not arrive whole: IMAGE_NOT_FOUND saying why.
 */
import { Readable } from 'node:stream';
import { ROOT_OWNER } from '../engine/owner.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { FORWARDED_HEADER, PRINCIPAL_HEADER } from './forward.js';
import type { NodeView, Nodes } from './types.js';
import { log as logLine } from '../logs/log.js';

/** How long a peer has to start answering (its headers); the archive then flows at its own pace. */
const ANSWER_MS = 15_000;

export type ImportArchive = (input: NodeJS.ReadableStream) => Promise<{ digest: string }[]>;

export class ImagePeers {
  /** Transfers under way, by image: a second sandbox of the same image waits for the first. */
  private readonly inflight = new Map<string, Promise<boolean>>();

  constructor(
    private readonly nodes: Nodes,
    private readonly importArchive: ImportArchive,
    private readonly log: (line: string) => void = (line) => logLine.info(line),
  ) {}

  /** Bring `image` (`NAME[:TAG]` or `sha256:…`) from the first other node that has it; whether one did. */
  fetch(image: string): Promise<boolean> {
    let p = this.inflight.get(image);
    if (!p) {
      p = this.fetchNow(image).finally(() => this.inflight.delete(image));
      this.inflight.set(image, p);
    }
    return p;
  }

  private async fetchNow(image: string): Promise<boolean> {
    if (!this.nodes.clustered) return false;
    const why: string[] = [];
    let peers: NodeView[] = [];
    try {
      peers = (await this.nodes.list()).filter((n) => !n.self && n.state !== 'down');
    } catch (e) {
      why.push(`the cluster's nodes could not be listed: ${errorMessage(e)}`);
    }
    for (const n of peers) {
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(new Error(`no answer within ${ANSWER_MS / 1000} s`)), ANSWER_MS);
      let res: Response;
      try {
        res = await fetch(new URL(`/v1/images/${encodeURIComponent(image)}/export`, n.address), {
          headers: {
            authorization: `Bearer ${this.nodes.peerToken()}`,
            [PRINCIPAL_HEADER]: ROOT_OWNER,
            [FORWARDED_HEADER]: this.nodes.selfId,
          },
          redirect: 'manual',
          signal: ctl.signal,
        });
      } catch (e) {
        why.push(`node ${n.id} did not answer (${errorMessage(e)})`);
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (res.status === 404) {
        await res.body?.cancel();
        continue;
      }
      if (!res.ok || !res.body) {
        why.push(`node ${n.id} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
        continue;
      }
      const input = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      try {
        const [img] = await this.importArchive(input);
        this.log(`realm: image ${image} (${img?.digest ?? '?'}) brought from node ${n.id}`);
        return true;
      } catch (e) {
        input.destroy();
        why.push(`node ${n.id} sent an image that did not import (${errorMessage(e)})`);
      }
    }
    if (!why.length) return false;
    throw new RealmError(
      'IMAGE_NOT_FOUND',
      `image "${image}" is not on this node, and no other node could send it: ${why.join('; ')}`,
    );
  }
}
