#!/usr/bin/env bash
# Runs every connector's conformance suite against the databases of
# docker/compose.yaml: PostgreSQL, MariaDB, MySQL 8.4, SQL Server 2022 and
# Oracle Free 23 (and KingbaseES when KINGBASE_IMAGE names an image).
#
#   docker/conformance.sh            # start the services, run the suites
#   KEEP=1 docker/conformance.sh     # leave the services running afterwards
#
# The Oracle suite needs Oracle Instant Client (Basic or Basic Light, and
# libaio) on the library path of this machine; without it that suite is
# reported as skipped. Everything else needs only Docker and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

compose=(docker compose -f docker/compose.yaml)
services=(postgres mariadb mysql sqlserver oracle)
if [ -n "${KINGBASE_IMAGE:-}" ]; then
  compose+=(--profile kingbase)
  services+=(kingbase)
fi
"${compose[@]}" up -d --wait "${services[@]}"
"${compose[@]}" run --rm sqlserver-seed
[ -n "${KEEP:-}" ] || trap '"${compose[@]}" down' EXIT

export TRIBUTARY_TEST_PG_URL=postgres://tributary:tributary@127.0.0.1:5432/tributary_test
export TRIBUTARY_TEST_MSSQL_URL='sqlserver://sa:Tributary-Passw0rd@127.0.0.1:1433/tributary_test?sslmode=require'
export TRIBUTARY_TEST_ORACLE_URL=oracle://system:tributary@127.0.0.1:1521/FREEPDB1
if [ -n "${KINGBASE_IMAGE:-}" ]; then
  export TRIBUTARY_TEST_KINGBASE_URL=kingbase://system:tributary@127.0.0.1:54321/test
fi

status=0
run() {
  echo "== $*"
  "$@" || status=1
}
run env TRIBUTARY_TEST_MYSQL_URL=mysql://root:root@127.0.0.1:3306/tributary_test \
  cargo test -p tributary-connector-mysql
run env TRIBUTARY_TEST_MYSQL_URL=mysql://root:root@127.0.0.1:3307/tributary_test \
  cargo test -p tributary-connector-mysql
run cargo test -p tributary-connector-postgres
run cargo test -p tributary-connector-sqlserver
has_instant_client() {
  ldconfig -p | grep -q libclntsh && return 0
  local dir
  IFS=: read -ra dirs <<<"${LD_LIBRARY_PATH:-}"
  for dir in "${dirs[@]}"; do
    compgen -G "$dir/libclntsh.so*" >/dev/null && return 0
  done
  return 1
}
if has_instant_client; then
  run cargo test -p tributary-connector-oracle --features client
else
  echo "skipped: Oracle Instant Client (libclntsh) not on the library path (Oracle conformance)"
fi
exit "$status"
