// The directory's Prometheus series (docs/design.md §5 and §8): whether this instance's directory is
// current, how far it applied the shared change log, how often it had to read it or reload it whole,
// and how many change announcements failed their signature.
import { Counter, Gauge, type Registry } from 'prom-client';

/** What the series read at each scrape; a single-instance (SQLite) directory is always current. */
export interface DirectoryState {
  readonly current: boolean;
  readonly position: string;
  readonly reloads: number;
  /** Reads of the change log (a PostgreSQL store's instances; 0 on SQLite). */
  readonly logReads: number;
  /** Signed change announcements whose signature did not verify. */
  readonly forgedAnnouncements: number;
}

export function registerDirectoryMetrics(registry: Registry, state: () => DirectoryState): void {
  const registers = [registry];
  new Gauge({
    name: 'rolegate_directory_current',
    help: '1 when this instance can vouch that its directory is current; 0 while new logins are refused for it',
    registers,
    collect() {
      this.set(state().current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rolegate_directory_log_position',
    help: 'The last change-log position (rg_changes seq) this instance applied; compare instances to see lag',
    registers,
    collect() {
      this.set(Number(state().position));
    },
  });
  totalOf(registers, 'rolegate_directory_reloads_total', 'Full reloads of the directory after this instance fell behind the pruned change log', () => state().reloads);
  totalOf(
    registers,
    'rolegate_directory_log_reads_total',
    "Reads of the shared change log: other instances' writes, and this instance's own when another lay between",
    () => state().logReads,
  );
  totalOf(
    registers,
    'rolegate_directory_forged_announcements_total',
    'Signed change announcements whose signature did not verify: a role other than rolegate NOTIFYing on its channel (the log was read instead)',
    () => state().forgedAnnouncements,
  );
}

/** A counter that follows a running total kept elsewhere, read at each scrape. */
function totalOf(registers: Registry[], name: string, help: string, read: () => number): void {
  let counted = 0;
  new Counter({
    name,
    help,
    registers,
    collect() {
      const now = read();
      if (now > counted) this.inc(now - counted);
      counted = now;
    },
  });
}
