// A set of listeners called synchronously, in subscription order, with what one throws reported and
// never stopping the others: the store's change feed and the directory's revocation events both
// notify this way, after a commit that must not fail because a listener did.
export class Listeners<E> {
  readonly #listeners = new Set<(event: E) => void>();
  readonly #onError: (err: unknown) => void;

  /** `onError` receives what a listener threw; if it throws itself, that is swallowed. */
  constructor(onError?: (err: unknown) => void) {
    this.#onError = onError ?? (() => {});
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** Adds `listener`; the returned function removes this registration (the same function may be added twice). */
  add(listener: (event: E) => void): () => void {
    const entry = (event: E): void => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Calls every listener registered now, even if one unsubscribes another meanwhile. */
  emit(event: E): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (err) {
        try {
          this.#onError(err);
        } catch {
          // A failing reporter must not stop the other listeners (nor fail a committed write).
        }
      }
    }
  }
}
