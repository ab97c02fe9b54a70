/**
 * The passes of a loop that must never overlap (a scheduler's, a placer's): a pass asked for while
 * one runs is made once right after it, however many were asked for meanwhile. `may` is asked
 * before every pass (e.g. still leading, not closed).
 */
export class SerialPasses {
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly may: () => boolean,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** A pass now, or right after the one running. */
  kick(): void {
    if (!this.may()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch(this.onError)
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves when the pass running now (if any) has ended. */
  async settled(): Promise<void> {
    await this.running;
  }
}
