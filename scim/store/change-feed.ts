// The in-process change feed of a store: listeners called synchronously after COMMIT, in commit order.
import { Listeners } from '../../lib/listeners.js';
import type { DirectoryChange } from './port.js';

export type ChangeListener = (changes: DirectoryChange[]) => void;

/** Fans a committed batch out to listeners; a throwing listener is reported and never fails the write. */
export class ChangeFeed {
  readonly #listeners: Listeners<DirectoryChange[]>;

  constructor(onListenerError?: (err: unknown) => void) {
    this.#listeners = new Listeners(onListenerError);
  }

  subscribe(listener: ChangeListener): () => void {
    return this.#listeners.add(listener);
  }

  publish(changes: DirectoryChange[]): void {
    if (changes.length > 0) this.#listeners.emit(changes);
  }
}
