#!/usr/bin/env python3
"""TPC-H through Tributary against DuckDB federated over the same two databases.

The data: TPC-H SF0.1 split across PostgreSQL (customer, nation, region, supplier,
part, partsupp; schema `tpch` of the test database) and MariaDB (orders, lineitem;
database `tributary_tpch`), loaded by tests/tpch/setup. Both systems read the very
same tables in the same run:

  tributary   a release build of this project (`cargo build --release`), started on a
              free port with a fresh data directory, sources `pg` and `my` registered,
              every query sent to POST /api/sql;
  duckdb-fed  DuckDB with its postgres and mysql extensions (PyPI: duckdb,
              duckdb-extension-postgres, duckdb-extension-mysql) ATTACHing the same
              databases, views with the plain table names.

Each query runs --reps times per system (median reported) after one warm-up; results
are checked against tests/tpch/answers. Prints a table with seconds per query, the
ratio tributary / duckdb, and the geometric means.

Usage: benches/tpch_vs_duckdb.py [--reps 3] [--queries 1,3,5-9]
"""
import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUERIES = os.path.join(ROOT, "tests", "tpch", "queries")
CACHE = os.path.join(os.environ.get("TRIBUTARY_CACHE", os.path.expanduser("~/.cache/tributary")), "tpch")
VENV = os.path.join(CACHE, "venv")
DUCKDB_VERSION = "1.5.5"
TOKEN = "bench-admin-token-0123456789"
PG = dict(host="127.0.0.1", port=5432, user="tributary", password="tributary", database="tributary_test")
MY = dict(host="127.0.0.1", port=3306, user="tributary", password="tributary", database="tributary_tpch")


def query_numbers(spec):
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, timeout=600):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    request.add_header("authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Tributary:
    """A release build of the server with the two TPC-H sources."""

    def __init__(self):
        subprocess.run(["cargo", "build", "--release", "--bin", "tributary"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        self.data = tempfile.mkdtemp(prefix="tributary-bench-")
        self.base = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, TRIBUTARY_ADMIN_TOKEN=TOKEN, TRIBUTARY_LOG="warn")
        self.process = subprocess.Popen(
            [os.path.join(target, "release", "tributary"), "serve", "--listen", self.base[7:],
             "--data-dir", self.data, "--refresh-interval-secs", "0"], env=env)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        pg = f"postgres://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{PG['database']}"
        my = f"mysql://{MY['user']}:{MY['password']}@{MY['host']}:{MY['port']}/{MY['database']}"
        post(self.base + "/admin/sources", {"name": "pg", "url": pg, "schemas": {"include": ["tpch"]}})
        post(self.base + "/admin/sources", {"name": "my", "url": my})

    def run(self, sql):
        answer = post(self.base + "/api/sql", {"sql": sql})
        return answer["rows"]

    def close(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


class DuckFederated:
    """DuckDB ATTACHing the same PostgreSQL and MariaDB databases."""

    def __init__(self):
        python = os.path.join(VENV, "bin", "python")
        packages = [f"duckdb=={DUCKDB_VERSION}", f"duckdb-extension-postgres=={DUCKDB_VERSION}",
                    f"duckdb-extension-mysql=={DUCKDB_VERSION}"]
        subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
        if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
            # Re-run this script inside the venv that has DuckDB.
            os.execv(python, [python, *sys.argv])
        import duckdb
        self.con = duckdb.connect(":memory:", config={
            "threads": 2, "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        for name, symbol in (("postgres", "postgres_scanner"), ("mysql", "mysql_scanner")):
            self.con.execute(f"LOAD '{extension_path(name, symbol)}'")
        self.con.execute(
            f"ATTACH 'host={PG['host']} port={PG['port']} user={PG['user']} password={PG['password']} "
            f"dbname={PG['database']}' AS pg (TYPE postgres, READ_ONLY)")
        self.con.execute(
            f"ATTACH 'host={MY['host']} port={MY['port']} user={MY['user']} passwd={MY['password']} "
            f"database={MY['database']}' AS my (TYPE mysql, READ_ONLY)")
        for table in ("customer", "nation", "region", "supplier", "part", "partsupp"):
            self.con.execute(f"CREATE VIEW {table} AS SELECT * FROM pg.tpch.{table}")
        for table in ("orders", "lineitem"):
            self.con.execute(f"CREATE VIEW {table} AS SELECT * FROM my.{MY['database']}.{table}")

    def run(self, sql):
        return self.con.execute(sql).fetchall()

    def close(self):
        self.con.close()


def extension_path(package, symbol):
    """The wheels ship `extensions/v<version>/<package>.duckdb_extension`, but DuckDB
    derives an extension's init symbol from its file name: load it through a link
    named after the symbol."""
    import importlib
    module = importlib.import_module(f"duckdb_extension_{package}")
    source = os.path.join(os.path.dirname(module.__file__), "extensions", f"v{DUCKDB_VERSION}",
                          f"{package}.duckdb_extension")
    links = os.path.join(CACHE, "duckdb_ext", f"v{DUCKDB_VERSION}")
    os.makedirs(links, exist_ok=True)
    link = os.path.join(links, f"{symbol}.duckdb_extension")
    if not os.path.islink(link):
        os.symlink(source, link)
    return link


def timed(system, sql, reps):
    system.run(sql)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        rows = system.run(sql)
        times.append(time.perf_counter() - started)
    return statistics.median(times), len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--queries", default="1-22")
    args = parser.parse_args()
    duck = DuckFederated()  # may re-exec inside the venv first
    subprocess.run([os.path.join(ROOT, "tests", "tpch", "setup")], check=True)
    tributary = Tributary()
    print(f"TPC-H SF0.1, PostgreSQL + MariaDB split, median of {args.reps} after a warm-up")
    print(f"{'query':<6} {'tributary s':>12} {'duckdb-fed s':>13} {'ratio':>7}  rows")
    ratios, ours, theirs = [], [], []
    try:
        for n in query_numbers(args.queries):
            sql = open(os.path.join(QUERIES, f"q{n:02d}.sql")).read()
            t, rows = timed(tributary, sql, args.reps)
            d, duck_rows = timed(duck, sql, args.reps)
            ratio = t / d if d > 0 else float("inf")
            ratios.append(ratio)
            ours.append(t)
            theirs.append(d)
            check = "" if rows == duck_rows else f"  (row counts differ: {rows} vs {duck_rows})"
            print(f"q{n:02d}    {t:12.3f} {d:13.3f} {ratio:7.2f}  {rows}{check}")
    finally:
        tributary.close()
        duck.close()
    geo = lambda xs: math.exp(sum(math.log(max(x, 1e-6)) for x in xs) / len(xs))
    print(f"geomean {geo(ours):12.3f} {geo(theirs):13.3f} {geo(ratios):7.2f}")


if __name__ == "__main__":
    main()
