#!/usr/bin/env bash
# Peak memory of a 6-million-row export with the release binary.
#
# Starts a server on a temporary data directory, registers the PostgreSQL
# test database (schema tributary_export, view tributary_export_6m — the one
# tests/export_memory.rs makes: bigint, text, numeric(12,2), timestamp over
# generate_series(1, 6000000)), streams `SELECT *` through POST /api/sql as
# NDJSON (or --accept MEDIA) with curl, and prints rows, seconds and the
# server's peak RSS (VmHWM) next to its RSS before the export. No
# assertions: tests/export_memory.rs asserts on the debug build.
#
#   benches/export_memory.sh [--binary PATH] [--accept MEDIA]
#
# Without --binary (or TRIBUTARY_BIN) it runs `cargo build --release`
# (honouring CARGO_TARGET_DIR). Needs curl, psql and python3 (a free port).
# The PostgreSQL URL is TRIBUTARY_TEST_PG_URL, as for the tests.
set -euo pipefail

cd "$(dirname "$0")/.."
binary="${TRIBUTARY_BIN:-}"
accept="application/x-ndjson"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --accept) accept="$2"; shift 2 ;;
        *) echo "usage: $0 [--binary PATH] [--accept MEDIA]" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    cargo build --release --bin tributary >&2
    binary="${CARGO_TARGET_DIR:-target}/release/tributary"
fi
pg_url="${TRIBUTARY_TEST_PG_URL:-postgres://tributary:tributary@127.0.0.1:5432/tributary_test}"
token="bench-admin-token-0123456789"

psql -q -v ON_ERROR_STOP=1 "$pg_url" <<'SQL'
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS tributary_export;
CREATE OR REPLACE VIEW tributary_export.tributary_export_6m AS
SELECT g AS id,
       'row-' || g AS label,
       (g * 0.01)::numeric(12,2) AS amount,
       timestamp '2020-01-01' + g * interval '1 second' AS at
FROM generate_series(1::bigint, 6000000::bigint) AS g;
SQL

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
# The row cap and the time limit must not cut the export.
cat > "$work/tributary.toml" <<EOF
listen = "127.0.0.1:$port"
data_dir = "$work/data"
admin_token = "$token"
refresh_interval_secs = 0
query_timeout_secs = 3600
max_rows = 100000000
log = "warn"
EOF
env -u TRIBUTARY_LISTEN -u TRIBUTARY_DATA_DIR -u TRIBUTARY_CONFIG -u TRIBUTARY_ADMIN_TOKEN \
    -u TRIBUTARY_REFRESH_INTERVAL_SECS -u TRIBUTARY_LOG \
    "$binary" serve --config "$work/tributary.toml" > /dev/null &
server_pid=$!
for _ in $(seq 100); do
    curl -fs "$base/healthz" > /dev/null && break
    sleep 0.1
done

# The source's statement timeout (30 s by default) would cancel a slow export.
python3 -c 'import json, sys; print(json.dumps({"name": "pg", "url": sys.argv[1],
    "schemas": {"include": ["tributary_export"]}, "pool": {"statement_timeout_ms": 0}}))' "$pg_url" |
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
        --data-binary @- "$base/admin/sources"

vm() { awk -v key="$1:" '$1 == key { printf "%d", $2 / 1024 }' "/proc/$server_pid/status"; }
before="$(vm VmRSS)"
start="$(date +%s.%N)"
# The body is counted as it arrives (lines), its size reported by curl.
lines="$(curl -fsS -N -w '%{stderr}%{size_download}' -H "Authorization: Bearer $token" \
    -H "accept: $accept" -H 'content-type: application/json' \
    -d '{"sql": "SELECT * FROM pg.tributary_export.tributary_export_6m"}' \
    "$base/api/sql" 2> "$work/size" | wc -l)" || { cat "$work/size" >&2; exit 1; }
end="$(date +%s.%N)"
peak="$(vm VmHWM)"

echo "accept:          $accept"
case "$accept" in
    *ndjson) echo "rows:            $lines" ;;
    text/csv) echo "rows:            $((lines - 1)) (and a header line)" ;;
    *) echo "rows:            (not counted for $accept)" ;;
esac
echo "MiB received:    $(awk -v b="$(cat "$work/size")" 'BEGIN { printf "%.0f", b / 1048576 }')"
echo "seconds:         $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
echo "RSS before:      ${before} MiB"
echo "peak RSS:        ${peak} MiB (VmHWM)"
echo "load average:    $(cut -d' ' -f1-3 /proc/loadavg)"
