#!/bin/bash
# First-start initialisation of the compose PostgreSQL (run once by the image's entrypoint from
# /docker-entrypoint-initdb.d, after it created the `app` database): a small schema and the two
# least-privilege roles rolegate logs in as, with their passwords from the environment.
#
# The entrypoint sources this file when it is not executable, so no `set -u` and no `exit` here.
set -eo pipefail
: "${APP_READER_PASSWORD:?APP_READER_PASSWORD must be set (deploy/.env)}"
: "${APP_WRITER_PASSWORD:?APP_WRITER_PASSWORD must be set (deploy/.env)}"

# psql's :'name' interpolation quotes the passwords as SQL literals: no shell or SQL injection through
# them. The server stores SCRAM-SHA-256 verifiers (password_encryption), never the passwords.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-app}" \
  -v reader_password="$APP_READER_PASSWORD" -v writer_password="$APP_WRITER_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';

-- Login roles with nothing beyond LOGIN: no superuser, no CREATEROLE/CREATEDB, no replication, and no
-- RLS bypass. A bounded connection count keeps one role from exhausting max_connections.
CREATE ROLE app_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  CONNECTION LIMIT 50 PASSWORD :'reader_password';
CREATE ROLE app_writer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  CONNECTION LIMIT 50 PASSWORD :'writer_password';

-- CONNECT only on `app`: PUBLIC may connect to every database by default.
REVOKE ALL ON DATABASE app FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE app TO app_reader, app_writer;

-- Nobody but the owner creates objects (PostgreSQL 15+ already revokes CREATE on public; be explicit).
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA app;
CREATE TABLE app.customers (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE app.orders (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers (id),
  amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
  status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'cancelled')),
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO app.customers (name, email) VALUES
  ('Ada Lovelace', 'ada@example.net'),
  ('Grace Hopper', 'grace@example.net'),
  ('Edsger Dijkstra', 'edsger@example.net');
INSERT INTO app.orders (customer_id, amount, status) VALUES
  (1, 120.00, 'paid'), (1, 35.50, 'open'), (2, 990.00, 'paid'), (3, 12.25, 'cancelled');

-- Table privileges, and the same for tables created later by the owner. Identity columns need no
-- sequence privilege, so INSERT alone is enough for app_writer.
GRANT USAGE ON SCHEMA app TO app_reader, app_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO app_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA app TO app_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO app_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_writer;

ALTER ROLE app_reader IN DATABASE app SET search_path = app;
ALTER ROLE app_writer IN DATABASE app SET search_path = app;
-- Defence in depth: even a grant added by mistake later does not let the reader write.
ALTER ROLE app_reader IN DATABASE app SET default_transaction_read_only = on;
SQL
