#!/bin/bash
# A hot standby of the primary (docker-compose.yml's `scaled` profile). On its first start (an
# empty volume) it clones the primary with pg_basebackup -R, which also writes the settings
# that make it stream the primary's WAL from then on; every start then runs the official
# image's entrypoint, which finds the data directory initialised and starts PostgreSQL.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  until pg_isready -q -h "$PRIMARY_HOST" -U replicator; do sleep 1; done
  PGPASSWORD="$POSTGRES_REPLICATION_PASSWORD" gosu postgres \
    pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream --checkpoint=fast
fi
exec docker-entrypoint.sh postgres
