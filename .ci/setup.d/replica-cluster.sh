#!/usr/bin/env bash
# A second PostgreSQL cluster on port 5433: the subscriber side of the logical
# replication tests (tests/ops/test_logical_replication.py; CRYPTOTRADING_TEST_PG_REPLICA_URL).
# Idempotent: creates the cluster when missing, trusts local and 127.0.0.1 connections,
# starts it and waits until it answers.
set -euo pipefail

VERSION="${REPLICA_PG_VERSION:-$(ls /etc/postgresql | sort -n | tail -n 1)}"
NAME=replica
PORT=5433
CONF_DIR="/etc/postgresql/$VERSION/$NAME"

if [ ! -d "$CONF_DIR" ]; then
    echo "creating PostgreSQL $VERSION cluster '$NAME' on port $PORT"
    pg_createcluster "$VERSION" "$NAME" -p "$PORT" >/dev/null
fi

# Test-only cluster: trust connections from this machine (the main cluster does too).
cat >"$CONF_DIR/pg_hba.conf" <<'EOF'
# written by .ci/setup.d/replica-cluster.sh (test cluster: trust local connections)
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
EOF

# Subscriber settings: room for an apply worker per subscription (app + market) of a
# few test databases plus the table-sync workers of their initial copies.
mkdir -p "$CONF_DIR/conf.d"
cat >"$CONF_DIR/conf.d/logical-replica.conf" <<'EOF'
# written by .ci/setup.d/replica-cluster.sh
listen_addresses = 'localhost'
max_worker_processes = 16
max_logical_replication_workers = 12
max_sync_workers_per_subscription = 4
max_replication_slots = 20
EOF

status="$(pg_lsclusters --no-header "$VERSION" "$NAME" | awk '{print $4}')"
if [ "$status" = "online" ]; then
    # pick up pg_hba.conf changes; the worker settings above need a restart only once
    if [ "$(psql -h 127.0.0.1 -p "$PORT" -U postgres -Atc 'show max_logical_replication_workers' 2>/dev/null)" != "12" ]; then
        pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" restart
    else
        pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" reload
    fi
else
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$NAME" start
fi

for _ in $(seq 1 30); do
    if pg_isready -h 127.0.0.1 -p "$PORT" -q; then
        echo "replica cluster answering on port $PORT"
        exit 0
    fi
    sleep 1
done
echo "replica cluster did not answer on port $PORT" >&2
exit 1
