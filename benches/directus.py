"""Directus 11, the REST anchor of benches/rest_vs_pgbench.py, set up as shared/bench does
(api/start_directus.sh, api/ops.py): directus@11.3.5 from npm under the machine's node (its
isolated-vm is compiled at install against that node), its system tables beside a copy of the
SF0.1 tables in the `public` schema of a database of its own (Directus reads one schema), the
o2m alias customer.orders written into its metadata with SQL (PATCH /relations crashes 11.3.5),
cache and rate limiter off, a static admin token.
"""

import os
import subprocess

import api_vs_pgbench as base
from api_vs_pgbench import KEYS, PG, TABLES, fail, say

DIR = os.path.join(base.CACHE, "directus")
DATABASE = "tributary_directus"
TOKEN = "bench-directus-token-0123456789"
MARKER = "TPC-H SF0.1 for Directus, loaded by benches/directus.py"
ORDER_COLUMNS = ",".join(base.ORDER_COLUMNS)

# shared/bench/api/ops.py's Directus requests; op (e) is one GraphQL request of both mutations, as
# PostGraphile's (REST would need two dependent requests), so (f) runs it too.
PATHS = {
    "a": f"/items/orders?limit=50&fields={ORDER_COLUMNS}&filter[o_orderstatus][_eq]=F"
         "&filter[o_totalprice][_gt]=100000&sort=-o_orderdate,o_orderkey",
    "b": f"/items/orders/__ORDERKEY__?fields={ORDER_COLUMNS}",
    "c": "/items/orders?aggregate[count]=*&aggregate[sum]=o_totalprice&groupBy[]=o_orderstatus",
    "d": "/items/customer/__CUSTKEY__?fields=c_custkey,c_name,orders.o_orderkey,orders.o_orderdate,"
         "orders.o_totalprice,orders.o_orderstatus&deep[orders][_sort]=-o_orderdate,o_orderkey"
         "&deep[orders][_limit]=10",
}
MUTATION = ('{"query":"mutation($id: ID!) { a: create_region_item(data: {r_regionkey: $id, r_name: \\"X\\", '
            'r_comment: \\"bench\\"}) { r_regionkey } b: delete_region_item(id: $id) { id } }",'
            '"variables":{"id":"__KEY__"}}')


def psql(sql, database=DATABASE):
    """Rows of `sql` run in `database`."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\t", "-h", PG["host"], "-p", PG["port"],
         "-U", PG["user"], database, "-c", sql],
        capture_output=True, text=True, env=base.pg_env())
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def install():
    if os.path.isfile(os.path.join(DIR, "node_modules", "directus", "cli.js")):
        return
    base.require("npm", "install Debian's packages nodejs and npm")
    os.makedirs(DIR, exist_ok=True)
    say("installing directus@11.3.5 (its isolated-vm compiles; a few minutes)")
    if not os.path.isfile(os.path.join(DIR, "package.json")):
        subprocess.run(["npm", "init", "-y"], cwd=DIR, check=True, capture_output=True)
    subprocess.run(["npm", "install", "--no-fund", "--no-audit", "directus@11.3.5"], cwd=DIR, check=True)


def loaded():
    try:
        marker = psql(f"SELECT obj_description('public'::regnamespace, 'pg_namespace'), "
                      f"(SELECT count(*) FROM orders)")
    except RuntimeError:
        return False
    return marker == [[MARKER, str(TABLES["orders"][0])]]


def load():
    """The SF0.1 tables in `public` of DATABASE (created when missing), keyed as the bench schema."""
    if loaded():
        return
    if not base.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", search_path=False):
        base.psql(f"CREATE DATABASE {DATABASE}", search_path=False)
    script = ["SET client_min_messages = warning;", "DROP SCHEMA public CASCADE;", "CREATE SCHEMA public;"]
    script += [f"CREATE TABLE {t} ({columns});" for t, (_, columns) in TABLES.items()]
    script += [f"\\copy {t} FROM '{base.DATA}/{t}.csv' WITH (FORMAT csv, HEADER true)" for t in TABLES]
    script += [KEYS, f"ANALYZE {', '.join(TABLES)};", f"COMMENT ON SCHEMA public IS '{MARKER}';"]
    out = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-h", PG["host"], "-p", PG["port"],
         "-U", PG["user"], DATABASE, "-f", "-"],
        input="\n".join(script), capture_output=True, text=True, env=base.pg_env())
    if out.returncode != 0:
        fail(f"loading {DATABASE} for Directus failed: {out.stderr.strip()}")
    if not loaded():
        fail(f"{DATABASE} does not hold the SF0.1 tables after loading")


class Directus:
    name = "directus"

    def __init__(self, pool_size):
        install()
        load()
        self.port = base.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/graphql"
        self.log = os.path.join(DIR, "directus.log")
        self.env = dict(
            os.environ, HOST="127.0.0.1", PORT=str(self.port), PUBLIC_URL=self.base, DB_CLIENT="pg",
            DB_HOST=PG["host"], DB_PORT=PG["port"], DB_DATABASE=DATABASE, DB_USER=PG["user"],
            DB_PASSWORD=PG["password"], DB_POOL__MAX=str(pool_size),
            SECRET="bench-directus-secret-0123456789abcdef", ADMIN_EMAIL="admin@example.com",
            ADMIN_PASSWORD="benchadmin", ADMIN_TOKEN=TOKEN, TELEMETRY="false", CACHE_ENABLED="false",
            RATE_LIMITER_ENABLED="false", LOG_LEVEL="warn", LOG_STYLE="raw", QUERY_LIMIT_DEFAULT="100",
            MARKETPLACE_REGISTRY="http://127.0.0.1:9/", EXTENSIONS_AUTO_RELOAD="false",
            WEBSOCKETS_ENABLED="false", NODE_ENV="production")
        cli = os.path.join("node_modules", "directus", "cli.js")
        boot = subprocess.run(["node", cli, "bootstrap"], cwd=DIR, env=self.env, capture_output=True, text=True)
        if boot.returncode != 0:
            fail(f"directus bootstrap failed:\n{(boot.stdout + boot.stderr)[-2000:]}")
        # The o2m alias customer.orders over orders.o_custkey (op d), as shared/bench writes it.
        psql("INSERT INTO directus_fields (collection, field, special, interface) "
             "SELECT 'customer', 'orders', 'o2m', 'list-o2m' WHERE NOT EXISTS "
             "(SELECT 1 FROM directus_fields WHERE collection = 'customer' AND field = 'orders')")
        psql("INSERT INTO directus_relations (many_collection, many_field, one_collection, one_field) "
             "SELECT 'orders', 'o_custkey', 'customer', 'orders' WHERE NOT EXISTS "
             "(SELECT 1 FROM directus_relations WHERE many_collection = 'orders' AND many_field = 'o_custkey')")
        self.process = subprocess.Popen(["node", cli, "start"], cwd=DIR, env=self.env,
                                        stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        base.wait_for(self.base + "/server/ping", "Directus", self.process, self.log, seconds=90)

    def close(self):
        base.stop(self.process)


def clean_region():
    """Rows left in Directus' copy of `region` by inserts in flight when a run ended."""
    psql("DELETE FROM region WHERE r_regionkey >= 1000000")
    psql("VACUUM FULL region")

