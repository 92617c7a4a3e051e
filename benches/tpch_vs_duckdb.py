#!/usr/bin/env python3
"""TPC-H through Tributary against DuckDB federated over the same two databases.

The data: TPC-H split across PostgreSQL (customer, nation, region, supplier, part,
partsupp) and MariaDB (orders, lineitem), loaded by tests/tpch/setup (run by this script;
it returns at once when the data are there):

  --sf 0.1  PostgreSQL schema `tpch` of the test database, MariaDB database
            `tributary_tpch`; answers: tests/tpch/answers
  --sf 1    schema `tpch_sf1`, database `tributary_tpch_sf1`; answers computed by the
            setup into ${TRIBUTARY_CACHE:-~/.cache/tributary}/tpch/sf1/answers

Both systems read the very same tables in the same run:

  tributary   a release build of this project, started on a free port with a fresh data
              directory, sources `pg` and `my` registered, every query sent to
              POST /api/sql. By default it is built with `cargo build --release`
              (honouring CARGO_TARGET_DIR); --binary PATH (or TRIBUTARY_BIN) uses a
              built binary instead and builds nothing;
  duckdb-fed  DuckDB with its postgres and mysql extensions (PyPI: duckdb,
              duckdb-extension-postgres, duckdb-extension-mysql) ATTACHing the same
              databases, views with the plain table names.

Each query runs once as a warm-up, then --reps times per system (median reported); a
warm-up that takes longer than --slow seconds counts as the first timed run. A run past
--timeout seconds is cancelled (Tributary: the server's query time limit and the sources'
statement timeout; DuckDB: interrupt) and reported as `timeout`. Every system's result
is checked against the reference answer (rows in order, numbers within a relative 1e-6,
text without CHAR padding, dates as ISO text). Prints seconds per query, the ratio
tributary / duckdb, the check, and geometric means over the queries both finished.

MariaDB's buffer pool decides SF1: with the 128 MB default the orders and lineitem
pages (~1.4 GB at SF1) do not fit, and every join MariaDB runs by key lookups (as it does
the joins Tributary pushes to it) reads pages it has just evicted — the same queries run
10-20x slower than with the data cached, while DuckDB's full scans barely notice.
shared/bench sizes the pool at 2 GiB. The header line prints the pool and the data's
size; --buffer-pool SIZE (e.g. 2G) sets MariaDB's innodb_buffer_pool_size for the run
(`SET GLOBAL` as MariaDB's root, which needs no password on this machine) and puts the
old size back at the end.

Usage: benches/tpch_vs_duckdb.py [--sf 0.1|1] [--reps 3] [--queries 1,3,5-9]
                                 [--timeout 300] [--binary PATH] [--buffer-pool 2G]
Example (SF1, one timed run each, 120 s limit, an existing release build):
  benches/tpch_vs_duckdb.py --sf 1 --reps 1 --timeout 120 \\
      --binary /var/tmp/tributary-target/release/tributary
"""
import argparse
import datetime
import decimal
import csv
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUERIES = os.path.join(ROOT, "tests", "tpch", "queries")
CACHE = os.path.join(os.environ.get("TRIBUTARY_CACHE", os.path.expanduser("~/.cache/tributary")), "tpch")
VENV = os.path.join(CACHE, "venv")
DUCKDB_VERSION = "1.5.5"
TOKEN = "bench-admin-token-0123456789"
PG = dict(host="127.0.0.1", port=5432, user="tributary", password="tributary", database="tributary_test")
MY = dict(host="127.0.0.1", port=3306, user="tributary", password="tributary")
# Per scale factor: PostgreSQL schema, MariaDB database, answers directory.
LAYOUTS = {
    "0.1": dict(schema="tpch", database="tributary_tpch",
                answers=os.path.join(ROOT, "tests", "tpch", "answers")),
    "1": dict(schema="tpch_sf1", database="tributary_tpch_sf1",
              answers=os.path.join(CACHE, "sf1", "answers")),
}
RELATIVE_TOLERANCE = 1e-6


class Timeout(Exception):
    pass


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
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        if "timeout" in detail and e.code in (408, 503, 504):
            raise Timeout(detail[:200]) from None
        raise RuntimeError(f"HTTP {e.code}: {detail[:300]}") from None
    except (socket.timeout, TimeoutError):
        raise Timeout("no answer within the client's limit") from None


class Tributary:
    """A release build of the server with the two TPC-H sources."""

    name = "tributary"

    def __init__(self, binary, layout, timeout):
        if binary is None:
            subprocess.run(["cargo", "build", "--release", "--bin", "tributary"], cwd=ROOT, check=True)
            target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
            binary = os.path.join(target, "release", "tributary")
        if not os.access(binary, os.X_OK):
            sys.exit(f"tpch_vs_duckdb: no Tributary binary at {binary} (build it with "
                     "`cargo build --release` or pass --binary)")
        self.timeout = timeout
        self.data = tempfile.mkdtemp(prefix="tributary-bench-")
        # The SQL endpoint's limit (60 s by default) and row cap come from the config file.
        config = os.path.join(self.data, "tributary.toml")
        with open(config, "w") as f:
            f.write(f"query_timeout_secs = {math.ceil(timeout)}\nmax_rows = 10000000\n")
        self.base = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, TRIBUTARY_ADMIN_TOKEN=TOKEN, TRIBUTARY_LOG="warn")
        self.process = subprocess.Popen(
            [binary, "serve", "--config", config, "--listen", self.base[7:],
             "--data-dir", self.data, "--refresh-interval-secs", "0"], env=env)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.close()
            sys.exit(f"tpch_vs_duckdb: {binary} did not answer on {self.base}/healthz")
        # Source statements may run as long as the endpoint allows (30 s by default).
        pool = {"statement_timeout_ms": int((timeout + 5) * 1000)}
        pg = f"postgres://{PG['user']}:{PG['password']}@{PG['host']}:{PG['port']}/{PG['database']}"
        my = f"mysql://{MY['user']}:{MY['password']}@{MY['host']}:{MY['port']}/{layout['database']}"
        post(self.base + "/admin/sources",
             {"name": "pg", "url": pg, "pool": pool, "schemas": {"include": [layout["schema"]]}})
        post(self.base + "/admin/sources", {"name": "my", "url": my, "pool": pool})

    def run(self, sql):
        answer = post(self.base + "/api/sql", {"sql": sql}, timeout=self.timeout + 30)
        if answer.get("truncated"):
            raise RuntimeError("result truncated by max_rows")
        return answer["rows"]

    def close(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


class DuckFederated:
    """DuckDB ATTACHing the same PostgreSQL and MariaDB databases."""

    name = "duckdb-fed"

    def __init__(self, layout, timeout):
        import duckdb
        self.timeout = timeout
        self.con = duckdb.connect(":memory:", config={
            "threads": 2, "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        for name, symbol in (("postgres", "postgres_scanner"), ("mysql", "mysql_scanner")):
            self.con.execute(f"LOAD '{extension_path(name, symbol)}'")
        self.con.execute(
            f"ATTACH 'host={PG['host']} port={PG['port']} user={PG['user']} password={PG['password']} "
            f"dbname={PG['database']}' AS pg (TYPE postgres, READ_ONLY)")
        self.con.execute(
            f"ATTACH 'host={MY['host']} port={MY['port']} user={MY['user']} passwd={MY['password']} "
            f"database={layout['database']}' AS my (TYPE mysql, READ_ONLY)")
        for table in ("customer", "nation", "region", "supplier", "part", "partsupp"):
            self.con.execute(f"CREATE VIEW {table} AS SELECT * FROM pg.{layout['schema']}.{table}")
        for table in ("orders", "lineitem"):
            self.con.execute(f"CREATE VIEW {table} AS SELECT * FROM my.{layout['database']}.{table}")

    def run(self, sql):
        fired = threading.Event()

        def interrupt():
            fired.set()
            self.con.interrupt()

        timer = threading.Timer(self.timeout, interrupt)
        timer.start()
        try:
            return self.con.execute(sql).fetchall()
        except Exception as e:
            if fired.is_set():
                raise Timeout(f"interrupted after {self.timeout} s") from None
            raise RuntimeError(str(e).splitlines()[0][:300]) from None
        finally:
            timer.cancel()

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


# --- the correctness check: the rules of tests/tpch.rs -----------------------------------
def numbers_match(actual, expected):
    difference = abs(actual - expected)
    return difference <= RELATIVE_TOLERANCE * max(abs(actual), abs(expected)) or difference < 1e-12


def last_place(text):
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    return 10.0 ** -decimals


def as_float(text):
    try:
        return float(text)
    except ValueError:
        return None


def cell_matches(actual, expected):
    """A result cell (JSON value from Tributary, Python value from DuckDB) against an
    answer field: numbers within the tolerance (an exact decimal may differ from the
    reference's double by one unit in its last place), text without CHAR padding,
    dates as ISO text, NULL as an empty field."""
    if actual is None:
        return expected == ""
    if isinstance(actual, bool):
        return expected == str(actual).lower()
    if isinstance(actual, (int, float)):
        e = as_float(expected)
        return e is not None and numbers_match(float(actual), e)
    if isinstance(actual, (datetime.date, datetime.datetime)):
        return actual.isoformat()[:10] == expected
    text = str(actual).rstrip()  # strings, and DuckDB's Decimal
    if text == expected.rstrip():
        return True
    a, e = as_float(text), as_float(expected)
    if a is None or e is None:
        return False
    if isinstance(actual, decimal.Decimal) or "." in text:
        return numbers_match(a, e) or abs(a - e) < 0.99 * last_place(text)
    return numbers_match(a, e)


def check(rows, answer_file):
    with open(answer_file, newline="") as f:
        expected = list(csv.reader(f))[1:]
    for i, (got, want) in enumerate(zip(rows, expected)):
        if len(got) != len(want) or not all(cell_matches(a, e) for a, e in zip(got, want)):
            return f"WRONG row {i}: got {list(got)} expected {want}"
    if len(rows) != len(expected):
        return f"WRONG {len(rows)} rows, answer has {len(expected)}"
    return "ok"


def measure(system, sql, reps, slow, answer_file):
    """(median seconds or None, status, rows): status is ok, timeout, error or WRONG ..."""
    times = []
    try:
        started = time.perf_counter()
        rows = system.run(sql)
        first = time.perf_counter() - started
        verdict = check(rows, answer_file)
        if first > slow:
            times.append(first)
        while len(times) < reps:
            started = time.perf_counter()
            system.run(sql)
            times.append(time.perf_counter() - started)
    except Timeout:
        return None, "timeout", None
    except Exception as e:  # an error answer: report it, go on with the next query
        return None, f"error: {e}", None
    return statistics.median(times), verdict, len(rows)


def in_duckdb_venv():
    """Re-runs this script inside the venv of tests/tpch/setup with DuckDB's postgres and
    mysql extensions installed (returns only when already there)."""
    python = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.access(python, os.X_OK):
        sys.exit(f"tpch_vs_duckdb: no venv at {VENV}; tests/tpch/setup creates it (it needs "
                 "python3-venv; a setup that fell back to a plain directory leaves none)")
    packages = [f"duckdb=={DUCKDB_VERSION}", f"duckdb-extension-postgres=={DUCKDB_VERSION}",
                f"duckdb-extension-mysql=={DUCKDB_VERSION}"]
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                   check=True)
    os.execv(python, [python, os.path.abspath(__file__), *sys.argv[1:]])


def mariadb(sql, root=False):
    """One statement through the `mariadb` (or `mysql`) client, as the benchmark's user (as
    root, without a password, to change a global setting); its one value."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        sys.exit("tpch_vs_duckdb: no mariadb or mysql client to read the buffer pool with")
    who = ["-uroot"] if root else [f"-u{MY['user']}", f"-p{MY['password']}"]
    done = subprocess.run([client, "-h", MY["host"], "-P", str(MY["port"]), *who, "-N", "-B",
                           "-e", sql], capture_output=True, text=True)
    if done.returncode != 0:
        user = "root" if root else MY["user"]
        sys.exit(f"tpch_vs_duckdb: MariaDB as {user} refused `{sql}`: {done.stderr.strip()}")
    return done.stdout.strip()


def size_in_bytes(text):
    """`2G`, `512M`, `1073741824` as bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def mib(n):
    return f"{n / (1 << 20):,.0f} MiB"


def fmt_seconds(seconds, status):
    if seconds is not None:
        return f"{seconds:.3f}"
    return "timeout" if status == "timeout" else "error"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", default="0.1", choices=sorted(LAYOUTS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--queries", default="1-22")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds one run of one query may take per system (default 300)")
    parser.add_argument("--slow", type=float, default=10,
                        help="a warm-up longer than this counts as a timed run (default 10 s)")
    parser.add_argument("--binary", default=os.environ.get("TRIBUTARY_BIN"),
                        help="a built tributary binary (default: cargo build --release)")
    parser.add_argument("--systems", default="tributary,duckdb-fed",
                        help="comma-separated subset of tributary,duckdb-fed")
    parser.add_argument("--buffer-pool", type=size_in_bytes,
                        help="MariaDB's innodb_buffer_pool_size for the run, e.g. 2G (see above)")
    args = parser.parse_args()
    layout = LAYOUTS[args.sf]
    systems = args.systems.split(",")

    setup = os.path.join(ROOT, "tests", "tpch", "setup")
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        subprocess.run([setup, "--sf", args.sf], check=True)  # also creates the venv
    in_duckdb_venv()
    if not os.path.isfile(os.path.join(layout["answers"], "q22.csv")):
        sys.exit(f"tpch_vs_duckdb: no answers in {layout['answers']} (run {setup} --sf {args.sf})")

    pool_before = int(mariadb("SELECT @@innodb_buffer_pool_size"))
    if args.buffer_pool:
        mariadb(f"SET GLOBAL innodb_buffer_pool_size = {args.buffer_pool}", root=True)
    pool = int(mariadb("SELECT @@innodb_buffer_pool_size"))
    data = int(mariadb("SELECT COALESCE(SUM(data_length + index_length), 0) FROM "
                       f"information_schema.tables WHERE table_schema = '{layout['database']}'"))
    running = []
    try:
        if "duckdb-fed" in systems:
            running.append(DuckFederated(layout, args.timeout))
        if "tributary" in systems:
            running.insert(0, Tributary(args.binary, layout, args.timeout))
        names = [s.name for s in running]
        load = os.getloadavg()
        print(f"TPC-H SF{args.sf}, PostgreSQL {layout['schema']} + MariaDB {layout['database']}, "
              f"median of {args.reps} after a warm-up, timeout {args.timeout:g} s, "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
        fits = "holds" if pool >= data else "does NOT hold: MariaDB's key lookups read from disk"
        print(f"MariaDB buffer pool {mib(pool)} {fits} its {mib(data)} of data and indexes", flush=True)
        header = f"{'query':<6}" + "".join(f" {n + ' s':>13}" for n in names)
        if len(running) == 2:
            header += f" {'ratio':>7}"
        print(header + "  rows  check", flush=True)
        finished = {n: [] for n in names}
        both, ratios, problems = [], [], []
        for n in query_numbers(args.queries):
            sql = open(os.path.join(QUERIES, f"q{n:02d}.sql")).read()
            answer = os.path.join(layout["answers"], f"q{n:02d}.csv")
            results = [measure(s, sql, args.reps, args.slow, answer) for s in running]
            line = f"q{n:02d}   " + "".join(f" {fmt_seconds(t, st):>13}" for t, st, _ in results)
            if len(running) == 2:
                (t, _, _), (d, _, _) = results
                if t is not None and d is not None:
                    ratio = t / d if d > 0 else float("inf")
                    ratios.append(ratio)
                    both.append((t, d))
                    line += f" {ratio:7.2f}"
                else:
                    line += f" {'-':>7}"
            rows = sorted({r for _, _, r in results if r is not None})
            line += f"  {'/'.join(map(str, rows)) or '-':>4}"
            verdicts = [f"{name}: {st}" for name, (_, st, _) in zip(names, results) if st != "ok"]
            line += "  " + ("; ".join(verdicts) if verdicts else "ok")
            for name, (t, st, _) in zip(names, results):
                if t is not None:
                    finished[name].append(t)
                if st != "ok":
                    problems.append(f"q{n:02d} {name}: {st}")
            print(line, flush=True)
    finally:
        for s in running:
            s.close()
        if args.buffer_pool and pool_before != pool:
            mariadb(f"SET GLOBAL innodb_buffer_pool_size = {pool_before}", root=True)

    def geo(xs):
        return math.exp(sum(math.log(max(x, 1e-6)) for x in xs) / len(xs)) if xs else float("nan")

    if len(running) == 2:
        print(f"geomean over the {len(both)} queries both finished: "
              f"{geo([t for t, _ in both]):.3f} s vs {geo([d for _, d in both]):.3f} s, "
              f"ratio {geo(ratios):.2f}")
    for name, times in finished.items():
        print(f"{name}: {len(times)} queries finished, geomean {geo(times):.3f} s, sum {sum(times):.1f} s")
    if problems:
        print("not ok:\n  " + "\n  ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
