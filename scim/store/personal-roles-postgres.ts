// Per-user provisioning's role records in the PostgreSQL directory database (table rg_personal_roles),
// shared by every instance on the store: a claim is one INSERT ... ON CONFLICT, so two instances that
// provision the same person at once end up with the same secret.
import pg from 'pg';
import type { PersonalRoleClaim, PersonalRoleRow, PersonalRoleStore } from './port.js';

interface Row {
  person_id: string;
  user_name: string;
  role_name: string;
  sealed_secret: string;
}

const COLUMNS = 'person_id, user_name, role_name, sealed_secret';

export class PostgresPersonalRoles implements PersonalRoleStore {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async list(): Promise<PersonalRoleRow[]> {
    const { rows } = await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM rg_personal_roles ORDER BY person_id`);
    return rows.map(toRow);
  }

  async get(personId: string): Promise<PersonalRoleRow | undefined> {
    const { rows } = await this.#pool.query<Row>(`SELECT ${COLUMNS} FROM rg_personal_roles WHERE person_id = $1`, [personId]);
    return rows[0] === undefined ? undefined : toRow(rows[0]);
  }

  async claim(row: PersonalRoleRow): Promise<PersonalRoleClaim> {
    for (;;) {
      try {
        const inserted = await this.#pool.query<Row>(
          `INSERT INTO rg_personal_roles (${COLUMNS}) VALUES ($1, $2, $3, $4)
           ON CONFLICT (person_id) DO NOTHING RETURNING ${COLUMNS}`,
          [row.personId, row.userName, row.roleName, row.sealedSecret],
        );
        if (inserted.rows[0] !== undefined) return { kind: 'stored', record: toRow(inserted.rows[0]) };
      } catch (err) {
        if (!(err instanceof pg.DatabaseError && err.constraint === 'rg_personal_roles_role_name_key')) throw err;
        const holder = await this.#pool.query<{ person_id: string }>('SELECT person_id FROM rg_personal_roles WHERE role_name = $1', [row.roleName]);
        const who = holder.rows[0]?.person_id;
        // Another instance claimed the same person at the same moment: the unique name was checked
        // before ON CONFLICT (person_id) could apply. Its record is the one: read it next round.
        // (A holder that has gone in the meantime also means: try again.)
        if (who !== undefined && who !== row.personId) return { kind: 'name_taken', holder: who };
        continue;
      }
      const existing = await this.get(row.personId);
      // Removed between the two statements (the role was just dropped): try again.
      if (existing !== undefined) return { kind: 'existing', record: existing };
    }
  }

  async update(row: PersonalRoleRow): Promise<boolean> {
    try {
      await this.#pool.query(
        'UPDATE rg_personal_roles SET user_name = $2, role_name = $3, sealed_secret = $4, updated = now() WHERE person_id = $1',
        [row.personId, row.userName, row.roleName, row.sealedSecret],
      );
      return true;
    } catch (err) {
      if (err instanceof pg.DatabaseError && err.constraint === 'rg_personal_roles_role_name_key') return false;
      throw err;
    }
  }

  async remove(personId: string): Promise<void> {
    await this.#pool.query('DELETE FROM rg_personal_roles WHERE person_id = $1', [personId]);
  }
}

function toRow(r: Row): PersonalRoleRow {
  return { personId: r.person_id, userName: r.user_name, roleName: r.role_name, sealedSecret: r.sealed_secret };
}
