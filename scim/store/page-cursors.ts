// Where the pages of an unfiltered list ended, so that the next page is a keyset seek (`seq > ?`)
// instead of an OFFSET that steps over every earlier row: O(n) a page, O(n²) for a client that pages
// through the whole directory (Okta's and Entra's full imports do exactly that).
//
// A cursor says "the row at position P is the first one after seq S". Rows are listed by seq, inserts
// get a seq larger than every existing row (they go to the end) and updates keep their seq, so a cursor
// stays true until a row is deleted. The owner calls `forget` when it deletes a row, and passes a
// version that changes on every commit by another connection; cursors of another version are dropped.

/** Cursors of one table's unfiltered list. */
export class PageCursors {
  readonly #max: number;
  #version = '';
  // position -> seq of the row just before it; a Map keeps insertion order for the eviction below.
  readonly #after = new Map<number, number>();

  /** `max`: cursors kept (a few clients paging at once, each needs only its next page's). */
  constructor(max = 64) {
    this.#max = max;
  }

  /** The seq that the row at `offset` follows, if a page under this version ended there. */
  seek(offset: number, version: string): number | undefined {
    this.#sync(version);
    return this.#after.get(offset);
  }

  /**
   * The cursor at `offset` with the version it was recorded under, for an owner that can check the
   * version only inside its query (PostgreSQL: in the same snapshot as the page).
   */
  peek(offset: number): { seq: number; version: string } | undefined {
    const seq = this.#after.get(offset);
    return seq === undefined ? undefined : { seq, version: this.#version };
  }

  /** Records that under `version` the row at `offset` is the first after `seq`. */
  remember(offset: number, seq: number, version: string): void {
    this.#sync(version);
    this.#after.delete(offset);
    this.#after.set(offset, seq);
    if (this.#after.size > this.#max) {
      const oldest = this.#after.keys().next();
      if (oldest.done !== true) this.#after.delete(oldest.value);
    }
  }

  /** Drops every cursor (the owner deleted a row: positions after it moved up). */
  forget(): void {
    this.#after.clear();
  }

  #sync(version: string): void {
    if (version === this.#version) return;
    this.#after.clear();
    this.#version = version;
  }
}
