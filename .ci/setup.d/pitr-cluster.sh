#!/usr/bin/env bash
# Point-in-time recovery tests (tests/ops/test_pitr_postgres.py) need pgBackRest and a
# PostgreSQL cluster of their own: `backup setup` turns on WAL archiving there
# (archive_mode, archive_command), which the shared cluster on 5432 must not get.
# Idempotent: installs pgbackrest if missing, creates cluster "pitr" on port 5434 if
# missing (trust auth on the local socket and 127.0.0.1), starts it if it is down.
set -euo pipefail

PORT="${CRYPTOTRADING_PITR_PORT:-5434}"
NAME=pitr

if ! command -v pgbackrest >/dev/null 2>&1; then
    echo "installing pgbackrest"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest
fi

VERSION="$(ls /etc/postgresql | sort -n | tail -n 1)"
CONF="/etc/postgresql/$VERSION/$NAME"

if [ ! -d "$CONF" ]; then
    echo "creating PostgreSQL cluster $VERSION/$NAME on port $PORT"
    pg_createcluster "$VERSION" "$NAME" -p "$PORT" -- --auth-local=trust --auth-host=trust
fi

# Trust on the local socket and 127.0.0.1 only (a test cluster, never exposed).
HBA="$CONF/pg_hba.conf"
if ! grep -q '^# cryptotrading pitr tests' "$HBA"; then
    cat >"$HBA" <<'EOF'
# cryptotrading pitr tests: trust on the local socket and loopback only
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
EOF
    chown postgres:postgres "$HBA"
    if pg_lsclusters -h | awk -v n="$NAME" -v v="$VERSION" '$1==v && $2==n {print $4}' | grep -q online; then
        pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" reload
    fi
fi

if ! pg_lsclusters -h | awk -v n="$NAME" -v v="$VERSION" '$1==v && $2==n {print $4}' | grep -q online; then
    echo "starting PostgreSQL cluster $VERSION/$NAME"
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" start
fi

for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p "$PORT" -q 2>/dev/null && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$PORT"
