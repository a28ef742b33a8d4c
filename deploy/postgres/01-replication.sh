#!/bin/bash
# The primary's side of streaming replication (docker-compose.yml's `scaled` profile): a role
# that may stream WAL, and a pg_hba line that lets it in with a password. The official image
# runs this once, when it initialises an empty volume, then restarts PostgreSQL, which reads
# the new pg_hba line. (wal_level is `replica` by default since PostgreSQL 10.)
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
