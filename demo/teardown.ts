// The demo's one shutdown path: everything it starts registers how to stop it, and stopping runs
// those steps newest first, each once, whether the demo is interrupted, fails half-way or ends.
/** A last-in, first-out list of stop steps. */
export class Teardown {
  readonly #steps: { name: string; run: () => Promise<void> }[] = [];
  readonly #failures: string[] = [];

  /** Registers a step; it runs before every step registered earlier. */
  add(name: string, run: () => Promise<void> | void): void {
    this.#steps.push({ name, run: async () => run() });
  }

  /** Runs and forgets every registered step; a failing step does not keep the others from running. */
  async run(): Promise<void> {
    for (let step = this.#steps.pop(); step !== undefined; step = this.#steps.pop()) {
      try {
        await step.run();
      } catch (err) {
        this.#failures.push(`${step.name}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      }
    }
  }

  /** Steps that failed so far, one line each. */
  failures(): readonly string[] {
    return [...this.#failures];
  }
}
