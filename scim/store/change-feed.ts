// The in-process change feed of a store: listeners called synchronously after COMMIT, in commit order.
import type { DirectoryChange } from './port.js';

export type ChangeListener = (changes: DirectoryChange[]) => void;

/** Fans a committed batch out to listeners; a throwing listener is reported and never fails the write. */
export class ChangeFeed {
  readonly #listeners = new Set<ChangeListener>();
  readonly #onListenerError: (err: unknown) => void;

  constructor(onListenerError?: (err: unknown) => void) {
    this.#onListenerError = onListenerError ?? (() => {});
  }

  subscribe(listener: ChangeListener): () => void {
    // Wrapped so the same function may subscribe twice and unsubscribe each registration on its own.
    const entry: ChangeListener = (changes) => listener(changes);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  publish(changes: DirectoryChange[]): void {
    if (changes.length === 0) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(changes);
      } catch (err) {
        try {
          this.#onListenerError(err);
        } catch {
          // The reporter itself failed; the write is committed and must still resolve.
        }
      }
    }
  }
}
