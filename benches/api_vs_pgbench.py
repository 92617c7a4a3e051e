#!/usr/bin/env python3
"""The SQL endpoint (POST /api/sql) on one PostgreSQL source against pgbench and PostGraphile 5.

Operations on TPC-H SF0.1 `orders` (150,000 rows), all systems reading the very same
PostgreSQL table (schema `tpch_pg_all` of the test database tributary_test, all eight TPC-H
tables, created by this script from the CSV files tests/tpch/setup generates):

  agg    SELECT o_orderstatus, count(*), sum(o_totalprice) FROM orders
         GROUP BY o_orderstatus ORDER BY 1                     (DB-bound aggregate)
  agg_named  the same with `AS n`, `AS total` (same work in PostgreSQL, another plan shape
         in the engine: measured too, so a failure of one form still leaves a number)
  point  SELECT * FROM orders WHERE o_orderkey = $1            (by primary key; a random
         existing key per request: i = random(1, 150000), key = (i / 8) * 32 + i % 8)

  pgbench       the same SQL, `pgbench -n -M prepared -j 2 -T <duration>` (search_path
                tpch_pg_all, so the text is identical), key drawn with `\\set`;
  tributary     a release build of this project started on a free port with a temporary
                data directory and one source `pg` (schema tpch_pg_all, pool --pool-size);
                `wrk -t2` posts {"sql": ..., "params": [key]} with the admin token, the key
                chosen per request by a Lua script;
  postgraphile  PostGraphile 5.1.5 (+ @graphile/simplify-inflection, as in shared/bench)
                on node 22, both from the npm registry, installed by this script into
                ${TRIBUTARY_CACHE:-~/.cache/tributary}/postgraphile; point only:
                `query($k: BigInt!) { order(oOrderkey: $k) { ...all columns } }` with the key
                as a variable (constant document), pool of --pool-size connections.

All three reach PostgreSQL over TCP in plain text (node-postgres' default; pgbench and
Tributary's source are told `sslmode=disable`): the same transport, so TLS costs on neither
side tilt the ratios (TLS on Tributary's side alone cost it ~18 % of GraphQL (d) and (e)).

Every system's answer is checked once before timing (fixed keys 1, 7, 32 and 600000 for
point, the whole result for agg) against psql. Prints requests/s (p50 / p99 latency) per
system and concurrency, tributary / pgbench and tributary / postgraphile, and the issue's
targets: agg (and agg_named) >= 0.9x pgbench, point >= 2x PostGraphile. Everything (clients, servers,
PostgreSQL) shares the machine's cores: compare ratios from one run.

Needs: psql, pgbench (postgresql-client), wrk (Debian package `wrk`), python3, a release
binary (--binary PATH or TRIBUTARY_BIN; default: `cargo build --release`, honouring
CARGO_TARGET_DIR), and for PostGraphile npm (first run only). Idempotent: the schema is
created once (checked by row counts and a marker comment), PostGraphile installed once.

Usage: benches/api_vs_pgbench.py [--binary PATH] [--conc 16,64] [--duration 10] [--reps 1]
           [--ops agg,agg_named,point] [--systems pgbench,tributary,postgraphile] [--pool-size 16]
Example: benches/api_vs_pgbench.py --binary /var/tmp/tributary-target/release/tributary
"""
import argparse
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.environ.get("TRIBUTARY_CACHE", os.path.expanduser("~/.cache/tributary"))
DATA = os.path.join(CACHE, "tpch", "sf0_1")
PGL_DIR = os.path.join(CACHE, "postgraphile")
TOKEN = "bench-admin-token-0123456789"
PG = dict(host="127.0.0.1", port="5432", user="tributary", password="tributary", database="tributary_test")
SCHEMA = "tpch_pg_all"
MARKER = "TPC-H SF0.1, all eight tables, loaded by benches/api_vs_pgbench.py"
TABLES = {  # table: (row count at SF0.1, DDL columns)
    "region": (5, "r_regionkey integer NOT NULL, r_name char(25) NOT NULL, r_comment varchar(152)"),
    "nation": (25, "n_nationkey integer NOT NULL, n_name char(25) NOT NULL, n_regionkey integer NOT NULL, n_comment varchar(152)"),
    "supplier": (1000, "s_suppkey integer NOT NULL, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL, s_nationkey integer NOT NULL, s_phone char(15) NOT NULL, s_acctbal decimal(15,2) NOT NULL, s_comment varchar(101) NOT NULL"),
    "customer": (15000, "c_custkey integer NOT NULL, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL, c_nationkey integer NOT NULL, c_phone char(15) NOT NULL, c_acctbal decimal(15,2) NOT NULL, c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL"),
    "part": (20000, "p_partkey integer NOT NULL, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL, p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size integer NOT NULL, p_container char(10) NOT NULL, p_retailprice decimal(15,2) NOT NULL, p_comment varchar(23) NOT NULL"),
    "partsupp": (80000, "ps_partkey integer NOT NULL, ps_suppkey integer NOT NULL, ps_availqty integer NOT NULL, ps_supplycost decimal(15,2) NOT NULL, ps_comment varchar(199) NOT NULL"),
    "orders": (150000, "o_orderkey bigint NOT NULL, o_custkey integer NOT NULL, o_orderstatus char(1) NOT NULL, o_totalprice decimal(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL, o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL"),
    "lineitem": (600572, "l_orderkey bigint NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL, l_linenumber integer NOT NULL, l_quantity decimal(15,2) NOT NULL, l_extendedprice decimal(15,2) NOT NULL, l_discount decimal(15,2) NOT NULL, l_tax decimal(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL, l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL"),
}
KEYS = """
ALTER TABLE region ADD PRIMARY KEY (r_regionkey);
ALTER TABLE nation ADD PRIMARY KEY (n_nationkey);
ALTER TABLE supplier ADD PRIMARY KEY (s_suppkey);
ALTER TABLE customer ADD PRIMARY KEY (c_custkey);
ALTER TABLE part ADD PRIMARY KEY (p_partkey);
ALTER TABLE partsupp ADD PRIMARY KEY (ps_partkey, ps_suppkey);
ALTER TABLE orders ADD PRIMARY KEY (o_orderkey);
ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);
CREATE INDEX nation_n_regionkey_idx ON nation (n_regionkey);
CREATE INDEX supplier_s_nationkey_idx ON supplier (s_nationkey);
CREATE INDEX customer_c_nationkey_idx ON customer (c_nationkey);
CREATE INDEX partsupp_ps_suppkey_idx ON partsupp (ps_suppkey);
CREATE INDEX orders_o_custkey_idx ON orders (o_custkey);
CREATE INDEX orders_o_orderdate_idx ON orders (o_orderdate);
CREATE INDEX lineitem_l_partkey_l_suppkey_idx ON lineitem (l_partkey, l_suppkey);
CREATE INDEX lineitem_l_suppkey_idx ON lineitem (l_suppkey);
CREATE INDEX lineitem_l_shipdate_idx ON lineitem (l_shipdate);
ALTER TABLE nation ADD CONSTRAINT nation_n_regionkey_fk FOREIGN KEY (n_regionkey) REFERENCES region (r_regionkey);
ALTER TABLE supplier ADD CONSTRAINT supplier_s_nationkey_fk FOREIGN KEY (s_nationkey) REFERENCES nation (n_nationkey);
ALTER TABLE customer ADD CONSTRAINT customer_c_nationkey_fk FOREIGN KEY (c_nationkey) REFERENCES nation (n_nationkey);
ALTER TABLE partsupp ADD CONSTRAINT partsupp_ps_partkey_fk FOREIGN KEY (ps_partkey) REFERENCES part (p_partkey);
ALTER TABLE partsupp ADD CONSTRAINT partsupp_ps_suppkey_fk FOREIGN KEY (ps_suppkey) REFERENCES supplier (s_suppkey);
ALTER TABLE orders ADD CONSTRAINT orders_o_custkey_fk FOREIGN KEY (o_custkey) REFERENCES customer (c_custkey);
ALTER TABLE lineitem ADD CONSTRAINT lineitem_l_orderkey_fk FOREIGN KEY (l_orderkey) REFERENCES orders (o_orderkey);
ALTER TABLE lineitem ADD CONSTRAINT lineitem_l_partkey_l_suppkey_fk FOREIGN KEY (l_partkey, l_suppkey) REFERENCES partsupp (ps_partkey, ps_suppkey);
"""

ORDER_COLUMNS = ["o_orderkey", "o_custkey", "o_orderstatus", "o_totalprice", "o_orderdate",
                 "o_orderpriority", "o_clerk", "o_shippriority", "o_comment"]
SQL = {
    "agg": "SELECT o_orderstatus, count(*), sum(o_totalprice) FROM orders GROUP BY o_orderstatus ORDER BY 1",
    "point": "SELECT * FROM orders WHERE o_orderkey = $1",
    # The aggregate with named columns: the same work for PostgreSQL, a different plan shape
    # for the engine (measured as well, in case the unnamed form fails there).
    "agg_named": "SELECT o_orderstatus, count(*) AS n, sum(o_totalprice) AS total FROM orders "
                 "GROUP BY o_orderstatus ORDER BY 1",
}
AGGREGATES = ["agg", "agg_named"]
# Random existing order key (dbgen's keys are sparse: 8 used out of every 32).
PGBENCH = {
    "agg": SQL["agg"] + ";\n",
    "agg_named": SQL["agg_named"] + ";\n",
    "point": "\\set i random(1, 150000)\n\\set k (:i / 8) * 32 + mod(:i, 8)\n"
             "SELECT * FROM orders WHERE o_orderkey = :k;\n",
}
CHECK_KEYS = [1, 7, 32, 600000]
PGL_PACKAGES = ["postgraphile@5.1.5", "@graphile/simplify-inflection@8.0.0"]
PGL_QUERY = "query($k: BigInt!) { order(oOrderkey: $k) { %s } }" % " ".join(
    c.split("_")[0] + "".join(p.title() for p in c.split("_")[1:]) for c in ORDER_COLUMNS)
TARGETS = {"agg": ("pgbench", 0.9), "agg_named": ("pgbench", 0.9), "point": ("postgraphile", 2.0)}


def fail(message):
    sys.exit(f"{os.path.splitext(os.path.basename(sys.argv[0]))[0]}: {message}")


def say(message):
    print(message, flush=True)


def require(tool, hint):
    path = shutil.which(tool)
    if not path:
        fail(f"`{tool}` not found: {hint}")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_env(search_path=False):
    env = dict(os.environ, PGPASSWORD=PG["password"], PGSSLMODE="disable")
    if search_path:
        env["PGOPTIONS"] = f"-c search_path={SCHEMA}"
    return env


def psql(sql, search_path=True):
    """Runs SQL with psql, returns the rows (tab-separated, unaligned)."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-F", "\t", "-h", PG["host"], "-p", PG["port"],
         "-U", PG["user"], PG["database"], "-c", sql],
        capture_output=True, text=True, env=pg_env(search_path))
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return [line.split("\t") for line in out.stdout.splitlines() if line]


# --- data ---------------------------------------------------------------------------------
def schema_loaded():
    try:
        counts = psql("SELECT " + ", ".join(f"(SELECT count(*) FROM {SCHEMA}.{t})" for t in TABLES)
                      + f", obj_description('{SCHEMA}'::regnamespace, 'pg_namespace')", search_path=False)
    except RuntimeError:
        return False
    return counts == [[str(n) for n, _ in TABLES.values()] + [MARKER]]


def load_schema():
    if schema_loaded():
        say(f"schema {SCHEMA} already loaded")
        return
    subprocess.run([os.path.join(ROOT, "tests", "tpch", "setup")], check=True)  # the SF0.1 CSV files
    for t in TABLES:
        if not os.path.isfile(os.path.join(DATA, f"{t}.csv")):
            fail(f"{DATA}/{t}.csv missing after tests/tpch/setup")
    started = time.time()
    script = ["SET client_min_messages = warning;", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;",
              f"CREATE SCHEMA {SCHEMA};", f"SET search_path = {SCHEMA};"]
    script += [f"CREATE TABLE {t} ({columns});" for t, (_, columns) in TABLES.items()]
    script += [f"\\copy {t} FROM '{DATA}/{t}.csv' WITH (FORMAT csv, HEADER true)" for t in TABLES]
    script += [KEYS, f"ANALYZE {', '.join(TABLES)};", f"COMMENT ON SCHEMA {SCHEMA} IS '{MARKER}';"]
    out = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-h", PG["host"], "-p", PG["port"],
         "-U", PG["user"], PG["database"], "-f", "-"],
        input="\n".join(script), capture_output=True, text=True, env=pg_env())
    if out.returncode != 0:
        fail(f"loading schema {SCHEMA} failed: {out.stderr.strip()}")
    # Visibility map and hint bits set once, so no timed run pays for them.
    psql(f"VACUUM ANALYZE {SCHEMA}.orders", search_path=False)
    if not schema_loaded():
        fail(f"schema {SCHEMA} does not hold the SF0.1 row counts after loading")
    say(f"loaded schema {SCHEMA} ({time.time() - started:.1f} s)")


# --- HTTP -----------------------------------------------------------------------------------
def post(url, body, headers=None, timeout=60):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')[:500]}") from None


def wait_for(url, what, process, log=None, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            tail = open(log).read()[-2000:] if log else ""
            fail(f"{what} exited with {process.returncode}\n{tail}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    fail(f"{what} did not answer on {url} within {seconds} s")


class Tributary:
    name = "tributary"

    def __init__(self, binary, pool_size):
        if binary is None:
            subprocess.run(["cargo", "build", "--release", "--bin", "tributary"], cwd=ROOT, check=True)
            target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
            binary = os.path.join(target, "release", "tributary")
        if not os.access(binary, os.X_OK):
            fail(f"no Tributary binary at {binary} (cargo build --release, or pass --binary)")
        self.data = tempfile.mkdtemp(prefix="tributary-api-bench-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(self.data, "server.log")
        env = dict(os.environ, TRIBUTARY_ADMIN_TOKEN=TOKEN, TRIBUTARY_LOG="warn")
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data,
             "--refresh-interval-secs", "0"], env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_for(self.base + "/healthz", f"tributary ({binary})", self.process, self.log)
        # Plain text, as node-postgres (PostGraphile) and pgbench here connect.
        url = f"postgres://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{PG['database']}?sslmode=disable"
        post(self.base + "/admin/sources",
             {"name": "pg", "url": url, "pool": {"max_size": pool_size}, "schemas": {"include": [SCHEMA]}},
             self.headers())

    @staticmethod
    def headers():
        return {"authorization": f"Bearer {TOKEN}"}

    def sql(self, sql, params=(), explain=False):
        body = {"sql": sql, "params": list(params)}
        if explain:
            body["explain"] = True
        return post(self.base + "/api/sql", body, self.headers())

    def close(self):
        stop(self.process)
        shutil.rmtree(self.data, ignore_errors=True)


class PostGraphile:
    name = "postgraphile"

    def __init__(self, pool_size, plugins=(), disable_plugins=()):
        """`plugins`: extra presets, each (npm package@version, module, exported preset name);
        `disable_plugins`: names of PostGraphile plugins to turn off."""
        install_postgraphile([package for package, _, _ in plugins])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        script = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        config_name = f"{script}.config.mjs"
        imports = "".join(f'import {{ {preset} }} from "{module}";\n' for _, module, preset in plugins)
        presets = "".join(f", {preset}" for _, _, preset in plugins)
        with open(os.path.join(PGL_DIR, config_name), "w") as f:
            f.write(f"""// Written by benches/{script}.py: schema {SCHEMA} of {PG['database']}.
import {{ PostGraphileAmberPreset }} from "postgraphile/presets/amber";
import {{ makePgService }} from "postgraphile/adaptors/pg";
import {{ PgSimplifyInflectionPreset }} from "@graphile/simplify-inflection";
{imports}export default {{
  extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset{presets}],
  disablePlugins: {json.dumps(list(disable_plugins))},
  pgServices: [makePgService({{
    connectionString: "postgres://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{PG['database']}",
    schemas: ["{SCHEMA}"],
    poolConfig: {{ max: Number(process.env.PG_POOL || 16) }},
  }})],
  grafserv: {{ host: "127.0.0.1", port: Number(process.env.PGL_PORT), graphiql: false, watch: false }},
  grafast: {{ explain: false }},
}};
""")
        self.log = os.path.join(PGL_DIR, "postgraphile.log")
        env = dict(os.environ, NODE_ENV="production", PGL_PORT=str(self.port), PG_POOL=str(pool_size))
        self.process = subprocess.Popen(
            [node22(), "node_modules/postgraphile/dist/cli-run.js", "-C", config_name],
            cwd=PGL_DIR, env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while True:
            if self.process.poll() is not None:
                fail(f"PostGraphile exited with {self.process.returncode}:\n{open(self.log).read()[-2000:]}")
            try:
                post(self.url, {"query": "{__typename}"}, timeout=2)
                break
            except (OSError, RuntimeError):
                if time.time() > deadline:
                    self.close()
                    fail(f"PostGraphile did not answer on {self.url}; see {self.log}")
                time.sleep(0.5)

    def point(self, key):
        return post(self.url, {"query": PGL_QUERY, "variables": {"k": str(key)}})

    def close(self):
        stop(self.process)


def stop(process):
    """Ends a server the bench started: asked first, killed after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def node22():
    return os.path.join(PGL_DIR, "node_modules", "node", "bin", "node")


def install_postgraphile(extra=()):
    """PostGraphile 5.1 needs node >= 22 (Debian's is older): both come from npm. `extra`:
    more npm packages (plugins); the marker file lists everything installed so far."""
    marker = os.path.join(PGL_DIR, "installed")
    have = set(open(marker).read().split()) if os.path.isfile(marker) else set()
    packages = PGL_PACKAGES + [p for p in extra if p not in PGL_PACKAGES]
    if set(packages + ["node@22"]) <= have and os.access(node22(), os.X_OK):
        return
    packages += sorted(p for p in have if p not in packages and p != "node@22")  # keep the others
    wanted = " ".join(packages + ["node@22"])
    npm = require("npm", "PostGraphile needs npm (Debian package `npm`), or leave it out with --systems")
    os.makedirs(PGL_DIR, exist_ok=True)
    if not os.path.isfile(os.path.join(PGL_DIR, "package.json")):
        with open(os.path.join(PGL_DIR, "package.json"), "w") as f:
            json.dump({"name": "tributary-bench-postgraphile", "private": True}, f)
    say(f"installing {wanted} into {PGL_DIR} (npm)")
    subprocess.run([npm, "install", "--no-fund", "--no-audit", "--loglevel=error", *packages, "node@22"],
                   cwd=PGL_DIR, check=True)
    if not os.access(node22(), os.X_OK):
        fail(f"npm installed no node binary at {node22()}")
    with open(marker, "w") as f:
        f.write(wanted)


# --- answers --------------------------------------------------------------------------------
def norm(value):
    """Cells compared as text: numbers as Decimal, CHAR padding dropped."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value)).normalize()
    text = str(value).rstrip()
    try:
        return Decimal(text).normalize()
    except ArithmeticError:  # decimal.InvalidOperation: not a number
        return text


def norm_rows(rows):
    return [[norm(v) for v in row] for row in rows]


def check_answers(systems, ops):
    """Each system's answers (the aggregate, the fixed keys) against psql's: a dict
    {(system, op): problem} of the pairs that must not be timed."""
    problems = {}

    def note(name, op, message):
        problems.setdefault((name, op), message)

    # The pgbench key formula reaches exactly the existing keys.
    reached = psql("SELECT count(*) FROM orders WHERE o_orderkey IN "
                   "(SELECT (i / 8) * 32 + i % 8 FROM generate_series(1, 150000) i)")[0][0]
    if reached != "150000":
        fail(f"the random-key formula reaches {reached} of the 150000 orders")
    for op in [op for op in AGGREGATES if op in ops and "tributary" in systems]:
        expected = norm_rows(psql(SQL[op]))
        try:
            got = norm_rows(systems["tributary"].sql(SQL[op])["rows"])
            if got != expected:
                note("tributary", op, f"WRONG: got {got}, expected {expected}")
        except RuntimeError as e:
            note("tributary", op, f"ERROR {e}")
    if "point" not in ops:
        return problems
    for key in CHECK_KEYS:
        expected = norm_rows(psql(f"SELECT * FROM orders WHERE o_orderkey = {key}"))
        if len(expected) != 1:
            fail(f"order {key} not found in {SCHEMA}.orders")
        for name, system in systems.items():
            try:
                if name == "tributary":
                    got = norm_rows(system.sql(SQL["point"], [key])["rows"])
                else:
                    answer = system.point(key)
                    if answer.get("errors") or not (answer.get("data") or {}).get("order"):
                        note(name, "point", f"ERROR key {key}: {json.dumps(answer)[:300]}")
                        continue
                    got = norm_rows([list(answer["data"]["order"].values())])
            except RuntimeError as e:
                note(name, "point", f"ERROR key {key}: {e}")
                continue
            if got != expected:
                note(name, "point", f"WRONG key {key}: got {got}, expected {expected}")
    return problems


# --- load generators ------------------------------------------------------------------------
UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """The process `pid`'s CPU ticks (user + system, all its threads) and those of each
    PostgreSQL backend serving the bench's database ({pid: ticks}), from /proc. PostgreSQL's
    background processes (checkpointer, WAL writer, autovacuum) are left out: their work lands
    in whichever run they happen to wake in (a checkpoint, the vacuum of rows an earlier run
    deleted). Nor are parallel query workers: they live for one query, so none is left at
    the end of a run to be read, and a plan that runs in parallel looks cheaper than it is.
    What remains still varies from run to run (PostgreSQL's share of (d) measured 0.03 and
    0.12 ms in two runs of the same binary). Not the plan cache: forcing generic plans left
    (d) where the default had it, forcing custom ones doubled PostgreSQL's share (README)."""
    backend = f" {PG['user']} {PG['database']} ".encode()
    def ticks(path):
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    db = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
                if not cmdline.startswith(b"postgres: ") or backend not in cmdline:
                    continue
            db[entry] = ticks(f"/proc/{entry}/stat")
        except OSError:  # gone meanwhile
            continue
    return ticks(f"/proc/{pid}/stat"), db


def cpu_per_op(before, after, ops):
    """(server, PostgreSQL) CPU milliseconds per operation between two `cpu_ticks`: per
    PostgreSQL process, so a backend that ended or began in between (a pool closing idle
    connections) neither takes nor adds what it spent outside the interval."""
    server = after[0] - before[0]
    db = sum(ticks - before[1].get(pid, 0) for pid, ticks in after[1].items())
    return tuple(t * 1000.0 / CLOCK_TICKS / max(ops, 1) for t in (server, db))


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text.strip())
    return float(m.group(1)) * UNIT_MS[m.group(2)]


WRK_LUA = r"""
-- Written by benches/api_vs_pgbench.py. Env: BODY (JSON, __KEY__ replaced by a random
-- existing order key per request, or sent as is), WRK_PATH, AUTH (header value or empty).
local body = os.getenv("BODY")
local path = os.getenv("WRK_PATH")
local auth = os.getenv("AUTH") or ""
local keyed = string.find(body, "__KEY__", 1, true) ~= nil
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if auth ~= "" then wrk.headers["Authorization"] = auth end
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(os.time() * 100 + (id or 0))
end
function request()
  if not keyed then return wrk.format(nil, path, nil, body) end
  local i = math.random(1, 150000)
  local k = math.floor(i / 8) * 32 + i % 8
  return wrk.format(nil, path, nil, (string.gsub(body, "__KEY__", tostring(k))))
end
"""


def run_wrk(url, body, auth, conc, duration, lua, extra_env=None):
    """wrk -t2 with the Lua script `lua`; env BODY, WRK_PATH, AUTH (and `extra_env`).
    Returns (req/s, p50 ms, p99 ms, notes, wrk's whole output)."""
    scheme_host, path = re.match(r"(https?://[^/]+)(/.*)", url).groups()
    env = dict(os.environ, BODY=body, WRK_PATH=path, AUTH=auth or "", **(extra_env or {}))
    out = subprocess.run(["wrk", "-t2", f"-c{conc}", f"-d{duration}s", "--timeout", "10s", "--latency",
                          "-s", lua, scheme_host], capture_output=True, text=True, env=env)
    text = out.stdout + out.stderr
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise RuntimeError(f"wrk printed no rate:\n{text}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    notes = []
    if bad:
        notes.append(f"{bad.group(1)} non-2xx")
    if sock:
        notes.append(f"socket errors {sock.group(1)}")
    return (float(m.group(1)), to_ms(re.search(r"\s50%\s+(\S+)", text).group(1)),
            to_ms(re.search(r"\s99%\s+(\S+)", text).group(1)), ", ".join(notes), text)


def run_pgbench(script, conc, duration):
    workdir = tempfile.mkdtemp(prefix="api-bench-pgbench-")
    try:
        path = os.path.join(workdir, "script.sql")
        with open(path, "w") as f:
            f.write(script)
        out = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-f", path, "-c", str(conc), "-j", "2", "-T", str(duration), "-l",
             "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], PG["database"]],
            capture_output=True, text=True, env=pg_env(search_path=True), cwd=workdir)
        m = re.search(r"tps = ([\d.]+)", out.stdout)
        if out.returncode != 0 or not m:
            hint = ""
            if "too many clients" in out.stdout + out.stderr:
                limit = psql("SHOW max_connections", search_path=False)[0][0]
                hint = (f"\nPostgreSQL's max_connections ({limit}) is below pgbench's {conc} clients plus the "
                        "connections the other systems keep open (--pool-size each for Tributary and "
                        "PostGraphile) and everyone else's: lower --pool-size or --conc")
            fail(f"pgbench failed:\n{out.stdout}\n{out.stderr}{hint}")
        latencies = []
        for name in os.listdir(workdir):
            if name.startswith("pgbench_log"):
                with open(os.path.join(workdir, name)) as f:
                    latencies += [int(line.split()[2]) / 1000.0 for line in f]
        latencies.sort()

        def q(x):
            return latencies[min(len(latencies) - 1, int(x * len(latencies)))] if latencies else math.nan

        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        note = f"{failed.group(1)} failed" if failed and failed.group(1) != "0" else ""
        return float(m.group(1)), q(0.5), q(0.99), note
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("TRIBUTARY_BIN"),
                        help="a built tributary binary (default: cargo build --release)")
    parser.add_argument("--conc", default="16,64")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each HTTP system's runs")
    parser.add_argument("--reps", type=int, default=1, help="runs per (op, concurrency, system); median shown")
    parser.add_argument("--ops", default="agg,agg_named,point")
    parser.add_argument("--systems", default="pgbench,tributary,postgraphile")
    parser.add_argument("--pool-size", type=int, default=16,
                        help="connections Tributary's source pool and PostGraphile may open (default 16)")
    args = parser.parse_args()
    ops = args.ops.split(",")
    concs = [int(c) for c in args.conc.split(",")]
    wanted = args.systems.split(",")
    for op in ops:
        if op not in SQL:
            fail(f"unknown op {op} ({', '.join(SQL)})")

    require("psql", "install postgresql-client")
    if "pgbench" in wanted:
        require("pgbench", "install postgresql-client (it ships pgbench)")
    if "tributary" in wanted or "postgraphile" in wanted:
        require("wrk", "install Debian's package `wrk` (apt-get install wrk)")
    try:
        psql("SELECT 1", search_path=False)
    except RuntimeError as e:
        fail(f"PostgreSQL at {PG['host']}:{PG['port']} does not answer as {PG['user']}: {e}")
    load_schema()

    systems, lua_dir = {}, tempfile.mkdtemp(prefix="api-bench-wrk-")
    lua = os.path.join(lua_dir, "request.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    results = {}  # (op, conc, system) -> [(rps, p50, p99, note)]
    problems = {}  # (system, op) -> why it was not timed
    try:
        if "tributary" in wanted:
            systems["tributary"] = Tributary(args.binary, args.pool_size)
            for op in ops:
                try:
                    plan = systems["tributary"].sql(SQL[op], [1] if op == "point" else [], explain=True)
                    sent = " | ".join(s.get("sql", "?") for s in plan.get("sources", []))
                except RuntimeError as e:
                    sent = f"(explain failed: {e})"
                say(f"tributary {op}, SQL sent to the source: {sent}")
        if "postgraphile" in wanted and "point" in ops:
            systems["postgraphile"] = PostGraphile(args.pool_size)
        problems = check_answers(systems, ops)
        for (name, op), problem in sorted(problems.items()):
            say(f"NOT TIMED {name} {op}: {problem}")
        say(f"answers checked against psql: {', '.join(a for a in AGGREGATES if a in ops)}, point (keys {', '.join(map(str, CHECK_KEYS))}) "
            f"for {', '.join(systems)}; {len(problems)} problem(s)")

        http = {}
        if "tributary" in systems:
            base = systems["tributary"].base
            auth = f"Bearer {TOKEN}"
            http["tributary"] = {
                **{op: (base + "/api/sql", json.dumps({"sql": SQL[op]}), auth) for op in AGGREGATES},
                "point": (base + "/api/sql", json.dumps({"sql": SQL["point"], "params": ["__KEY__"]})
                          .replace('"__KEY__"', "__KEY__"), auth),
            }
        if "postgraphile" in systems:
            http["postgraphile"] = {
                "point": (systems["postgraphile"].url,
                          json.dumps({"query": PGL_QUERY, "variables": {"k": "__KEY__"}}), ""),
            }
        load = os.getloadavg()
        say(f"SF0.1 orders in PostgreSQL {SCHEMA}; {args.duration} s per run, {args.reps} run(s), "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        for op in ops:
            for conc in concs:
                order = [s for s in ["pgbench", "tributary", "postgraphile"]
                         if s in wanted and (s == "pgbench" or op in http.get(s, {}))
                         and (s, op) not in problems]
                for name in order:
                    if name != "pgbench" and args.warmup > 0:
                        url, body, auth = http[name][op]
                        run_wrk(url, body, auth, conc, args.warmup, lua)
                for _ in range(args.reps):  # interleaved, so drift hits every system alike
                    for name in order:
                        if name == "pgbench":
                            r = run_pgbench(PGBENCH[op], conc, args.duration)
                        else:
                            url, body, auth = http[name][op]
                            r = run_wrk(url, body, auth, conc, args.duration, lua)[:4]
                        results.setdefault((op, conc, name), []).append(r)
                        say(f"  {op:<5} c={conc:<3} {name:<12} {r[0]:10.1f} req/s  p50 {r[1]:.2f} ms  "
                            f"p99 {r[2]:.2f} ms  {r[3]}")
    finally:
        for system in systems.values():
            system.close()
        shutil.rmtree(lua_dir, ignore_errors=True)

    def median(key):
        runs = results.get(key)
        if not runs:
            return None
        return tuple(statistics.median(r[i] for r in runs) for i in range(3)) + (
            "; ".join(sorted({r[3] for r in runs if r[3]})),)

    say("")
    say("| op | c | pgbench req/s | tributary req/s | postgraphile req/s | tributary / pgbench "
        "| tributary / postgraphile | target |")
    say("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for op in ops:
        for conc in concs:
            cells, rates = [], {}
            for name in ["pgbench", "tributary", "postgraphile"]:
                m = median((op, conc, name))
                if m is None:
                    cells.append(f"not timed ({problems[(name, op)].split()[0].lower()})"
                                 if (name, op) in problems else "-")
                    continue
                rates[name] = m[0]
                cells.append(f"{m[0]:.0f} ({m[1]:.2f}/{m[2]:.2f} ms){' ' + m[3] if m[3] else ''}")
            ratio = lambda other: (f"{rates['tributary'] / rates[other]:.3f}"
                                   if "tributary" in rates and rates.get(other) else "-")
            against, floor = TARGETS[op]
            if "tributary" in rates and rates.get(against):
                met = rates["tributary"] / rates[against] >= floor
                target = f"{'met' if met else 'MISSED'} (>= {floor}x {against})"
                verdicts.append(met)
            else:
                target = f"- (>= {floor}x {against})"
            say(f"| {op} | {conc} | {' | '.join(cells)} | {ratio('pgbench')} | {ratio('postgraphile')} "
                f"| {target} |")
    say("(req/s, p50/p99 latency in ms; median of the runs)")
    if problems:
        fail("wrong answers or errors (not timed):\n  " + "\n  ".join(
            f"{name} {op}: {problem}" for (name, op), problem in sorted(problems.items())))


if __name__ == "__main__":
    main()
