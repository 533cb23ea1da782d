// Per-user provisioning's role records in the SQLite directory file (table rg_personal_roles).
import type Database from 'better-sqlite3';
import type { PersonalRoleClaim, PersonalRoleRow, PersonalRoleStore } from './port.js';
import { keepForProcessLife } from './sqlite-lifetime.js';

interface Row {
  person_id: string;
  user_name: string;
  role_name: string;
  sealed_secret: string;
}

const COLUMNS = 'person_id, user_name, role_name, sealed_secret';

export class SqlitePersonalRoles implements PersonalRoleStore {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #now: () => string;
  // Made once: a transaction function prepares native statements, which must not be left to the GC
  // (see sqlite-lifetime.ts).
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(db: Database.Database, now: () => string) {
    this.#db = db;
    this.#now = now;
    this.#tx = keepForProcessLife(db.transaction((fn: () => unknown) => fn()));
  }

  #stmt(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      s = keepForProcessLife(this.#db.prepare(sql));
      this.#statements.set(sql, s);
    }
    return s;
  }

  async list(): Promise<PersonalRoleRow[]> {
    return (this.#stmt(`SELECT ${COLUMNS} FROM rg_personal_roles ORDER BY person_id`).all() as Row[]).map(toRow);
  }

  async get(personId: string): Promise<PersonalRoleRow | undefined> {
    const row = this.#stmt(`SELECT ${COLUMNS} FROM rg_personal_roles WHERE person_id = ?`).get(personId) as Row | undefined;
    return row === undefined ? undefined : toRow(row);
  }

  async claim(row: PersonalRoleRow): Promise<PersonalRoleClaim> {
    return this.#tx.immediate((): PersonalRoleClaim => {
      const existing = this.#stmt(`SELECT ${COLUMNS} FROM rg_personal_roles WHERE person_id = ?`).get(row.personId) as Row | undefined;
      if (existing !== undefined) return { kind: 'existing', record: toRow(existing) };
      const holder = this.#stmt('SELECT person_id FROM rg_personal_roles WHERE role_name = ?').get(row.roleName) as { person_id: string } | undefined;
      if (holder !== undefined) return { kind: 'name_taken', holder: holder.person_id };
      this.#stmt(`INSERT INTO rg_personal_roles (${COLUMNS}, updated) VALUES (?, ?, ?, ?, ?)`).run(
        row.personId,
        row.userName,
        row.roleName,
        row.sealedSecret,
        this.#now(),
      );
      return { kind: 'stored', record: { ...row } };
    }) as PersonalRoleClaim;
  }

  async update(row: PersonalRoleRow): Promise<boolean> {
    return this.#tx.immediate((): boolean => {
      const holder = this.#stmt('SELECT person_id FROM rg_personal_roles WHERE role_name = ?').get(row.roleName) as { person_id: string } | undefined;
      if (holder !== undefined && holder.person_id !== row.personId) return false;
      this.#stmt('UPDATE rg_personal_roles SET user_name = ?, role_name = ?, sealed_secret = ?, updated = ? WHERE person_id = ?').run(
        row.userName,
        row.roleName,
        row.sealedSecret,
        this.#now(),
        row.personId,
      );
      return true;
    }) as boolean;
  }

  async remove(personId: string): Promise<void> {
    this.#stmt('DELETE FROM rg_personal_roles WHERE person_id = ?').run(personId);
  }
}

function toRow(r: Row): PersonalRoleRow {
  return { personId: r.person_id, userName: r.user_name, roleName: r.role_name, sealedSecret: r.sealed_secret };
}
