#!/usr/bin/env python3
"""The REST API (GET/POST/DELETE /api/pg_<table>) on one PostgreSQL source against pgbench and
PostGraphile 5: the issue's operations (a)-(e) of shared/bench (api/ops.py, sql/pgbench_*.sql) on
TPC-H SF0.1 in schema `tpch_pg_all` of tributary_test (created as benches/api_vs_pgbench.py does,
whose helpers this script imports).

  a  50 orders with o_orderstatus 'F' and o_totalprice > 100000, newest first   (DB-bound)
       SQL   SELECT * FROM orders WHERE o_orderstatus='F' AND o_totalprice>100000
             ORDER BY o_orderdate DESC, o_orderkey LIMIT 50
       REST  GET /api/pg_orders?filter={"o_orderstatus":"F","o_totalprice":{"$gt":100000}}
             &sort=-o_orderdate,o_orderkey&pageSize=50
  b  one order by primary key, a random existing key per request               (light)
       SQL   SELECT * FROM orders WHERE o_orderkey=:k
       REST  GET /api/pg_orders/<k>
  c  count and sum(o_totalprice) per o_orderstatus                              (DB-bound)
       SQL   SELECT o_orderstatus, count(*), sum(o_totalprice) FROM orders GROUP BY 1 ORDER BY 1
       REST  GET /api/pg_orders:aggregate?measures=[count, sum(o_totalprice)]
             &dimensions=[o_orderstatus]&sort=o_orderstatus
  d  one customer with its 10 latest orders                                     (light)
       SQL   customer by key + correlated json_agg of its 10 latest orders (as shared/bench)
       REST  GET /api/pg_orders?filter={"o_custkey":<c>}&sort=-o_orderdate,o_orderkey&pageSize=10
             &fields=o_orderkey,o_orderdate,o_totalprice,o_orderstatus,customer.c_custkey,customer.c_name
  e  insert a region row, then delete it                                        (light)
       SQL   INSERT INTO region VALUES (:k, 'X', 'bench'); DELETE FROM region WHERE r_regionkey=:k
       REST  POST /api/pg_region {"r_regionkey":<k>,"r_name":"X","r_comment":"bench"}, then
             DELETE /api/pg_region/<k>: two requests, two transactions
  f  (e) as one request: both writes in one transaction                         (light)
       SQL   as (e)
       REST  POST /api/batch {"operations": [{"action":"create","collection":"pg_region","values":
             {"r_regionkey":<k>,...}}, {"action":"destroy","collection":"pg_region","key":<k>}]}
       PostGraphile runs (e)'s request: the same one request of two writes.

Why (d) is this request: `appends` has no per-relation limit or sort, so
`GET /api/pg_customer/<c>?appends=orders` would answer all of the customer's orders (about 15,
unsorted by date), not the 10 latest. Listing the customer's orders newest first, 10 to a page,
with the customer appended is the same work as the SQL floor: one read of the 10 latest orders
by o_custkey (index orders_o_custkey_idx) and of the customer by primary key (joined into the
same statement); the answer holds the same values, the customer's key and name as the SQL and
PostGraphile answer them (`customer.c_name` in `fields` appends only those columns), once per
order. For a customer without orders it would skip the customer read, so every
system draws the key from the 10,000 customers that have orders (dbgen gives none to keys
divisible by 3): i = random(1, 10000), c = ((i - 1) / 2) * 3 + (i - 1) % 2 + 1. shared/bench
draws random(1, 15000); with this formula the floor and PostGraphile do the same work as before
for two thirds of their requests and slightly more for the rest.

Why (e) is two requests: as shared/bench, the row goes into `region` (not `orders`: same table
and values as the pgbench floor and the PostGraphile mutations). The wrk script posts a fresh
key; when the 201 comes back it queues that key, and the thread's next request deletes it, so
every insert is paired with a delete of the same row. One (e) is one INSERT and one DELETE
transaction, like one pgbench transaction (the floor's two statements) and one PostGraphile
request (two mutations): Tributary's (e) rate is its HTTP requests/s / 2, its p50/p99 the
latency of one HTTP request (half an operation). Rows left by inserts in flight when a run ends
are deleted with psql (r_regionkey >= 1000000) after each run, and `region` is vacuumed.

Systems (all reading the same PostgreSQL tables, search_path tpch_pg_all, over plain-text TCP as
api_vs_pgbench.py says):
  pgbench       the SQL above, `pgbench -n -M prepared -j 2 -T <duration>` (the floor); for the
                DB-bound (a) and (c), when --pool-size is below the concurrency, once more with
                --pool-size clients (printed under the table): PostgreSQL's own rate at the
                concurrency Tributary's pool lets it see;
  tributary     a release build started with a temporary data directory and one source `pg`
                (pool --pool-size), driven by `wrk -t2` with the admin token;
  postgraphile  PostGraphile 5.1.5 with @graphile/simplify-inflection, @graphile/pg-aggregates
                0.2.0-rc.2 and postgraphile-plugin-connection-filter 4.0.1 (PgIndexBehaviorsPlugin
                off), as in shared/bench, installed by api_vs_pgbench.py's installer; its GraphQL
                documents are shared/bench's, keys sent as variables. Op (c) counts with
                `distinctCount { oOrderkey }` (pg-aggregates has no plain count in groupedAggregates);
  directus      Directus 11.3.5 (benches/directus.py, as shared/bench/api/start_directus.sh sets
                it up): its system tables beside a copy of the SF0.1 tables in the `public` schema
                of database tributary_directus, pool --pool-size, cache and rate limiter off, a
                static token; its requests are shared/bench's (api/ops.py): REST for (a)-(d), for
                (e) and (f) one GraphQL request of both mutations. Not in the default --systems
                (the first run installs it from npm, a few minutes: isolated-vm compiles);
                ask for it with --systems ...,directus. With pgbench's 64 clients beside three pools
                of 16, PostgreSQL's default max_connections (100) is too few: compare Directus
                with the other HTTP systems in a run of its own (--systems
                tributary,postgraphile,directus).

Every system's answer is checked once before timing against psql: (a) and (c) whole results,
(b) orders 1, 7, 32, 600000 (every column), (d) customers 1, 2, 4, 14999 (the customer's
columns and the 10 orders' values, in order), (e) key 1999999999: the insert's answer, the row
in PostgreSQL, then its absence after the delete. A system that fails a check is not timed.
Prints requests/s (p50 / p99 latency) per op, concurrency and system, tributary / pgbench,
tributary / postgraphile and the issue's goals: (b), (d), (f) >= 2x PostGraphile — the
issue's insert + delete is PostGraphile's one request of two mutations, (f)'s shape; (e),
two requests and two transactions (two commits), is shown without a goal — (a), (c) >= 0.9x
the pgbench floor. Clients, servers and PostgreSQL share the machine's cores: compare
ratios from one run. A second table gives the CPU milliseconds each HTTP system's server and
the PostgreSQL backends serving it spent per operation (from /proc over each timed run; not
PostgreSQL's background processes, whose work lands in whichever run they wake in): steadier
than the rates on a machine whose speed drifts, it shows what an operation costs and where.

Needs what api_vs_pgbench.py needs (psql, pgbench, wrk, python3, a release binary; npm for
PostGraphile on the first run).

Usage: benches/rest_vs_pgbench.py [--binary PATH] [--conc 16,64] [--duration 10] [--reps 1]
           [--ops a,b,c,d,e,f] [--systems pgbench,tributary,postgraphile] [--pool-size 16]
Example: benches/rest_vs_pgbench.py --binary /var/tmp/tributary-target/release/tributary
"""
import argparse
import collections
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_vs_pgbench as base  # noqa: E402  (schema, servers, pgbench/wrk runners, value normalisation)
import directus  # noqa: E402  (the Directus 11 anchor)
from api_vs_pgbench import ORDER_COLUMNS, fail, norm, norm_rows, psql, say  # noqa: E402

OPS = ["a", "b", "c", "d", "e"]
REST_OPS = OPS + ["f"]  # (f): (e) through the REST API's batch route
D_CUSTOMER_COLUMNS = ["c_custkey", "c_name"]  # the customer's columns every system answers in (d)
D_ORDER_COLUMNS = ["o_orderkey", "o_orderdate", "o_totalprice", "o_orderstatus"]
# Random keys, the same formulas in pgbench and in the wrk script.
PGBENCH_ORDERKEY = "\\set i random(1, 150000)\n\\set k (:i / 8) * 32 + mod(:i, 8)\n"
PGBENCH_CUSTKEY = "\\set i random(1, 10000)\n\\set c ((:i - 1) / 2) * 3 + mod(:i - 1, 2) + 1\n"
SQL = {
    "a": "SELECT * FROM orders WHERE o_orderstatus='F' AND o_totalprice>100000 "
         "ORDER BY o_orderdate DESC, o_orderkey LIMIT 50",
    "b": "SELECT * FROM orders WHERE o_orderkey=:k",
    "c": "SELECT o_orderstatus, count(*), sum(o_totalprice) FROM orders GROUP BY o_orderstatus ORDER BY 1",
    "d": "SELECT c_custkey, c_name, (SELECT json_agg(o) FROM (SELECT o_orderkey, o_orderdate, o_totalprice, "
         "o_orderstatus FROM orders WHERE o_custkey=c_custkey ORDER BY o_orderdate DESC, o_orderkey LIMIT 10) o) "
         "FROM customer WHERE c_custkey=:c",
    "e": "INSERT INTO region VALUES (:k, 'X', 'bench');\nDELETE FROM region WHERE r_regionkey=:k",
}
SQL["f"] = SQL["e"]
PGBENCH = {
    "a": SQL["a"] + ";\n",
    "b": PGBENCH_ORDERKEY + SQL["b"] + ";\n",
    "c": SQL["c"] + ";\n",
    "d": PGBENCH_CUSTKEY + SQL["d"] + ";\n",
    "e": "\\set k random(1000000, 2000000000)\n" + SQL["e"] + ";\n",
}
PGBENCH["f"] = PGBENCH["e"]
CHECK_ORDERKEYS = [1, 7, 32, 600000]
CHECK_CUSTKEYS = [1, 2, 4, 14999]
CHECK_INSERT_KEY = 1999999999
# The DB-bound floor run again with --pool-size clients (see main).
POOL_FLOOR = "pgbench-pool"
TARGETS = {"a": ("pgbench", 0.9), "b": ("postgraphile", 2.0), "c": ("pgbench", 0.9),
           "d": ("postgraphile", 2.0), "e": ("postgraphile", 2.0), "f": ("postgraphile", 2.0)}
LABEL = {"a": "a list 50", "b": "b by key", "c": "c group-by", "d": "d cust+10 orders", "e": "e ins+del",
         "f": "f ins+del, 1 request"}


def q(value):
    """A query-string value, percent-encoded (placeholders such as __CUSTKEY__ survive)."""
    return urllib.parse.quote(value, safe=",")


def json_q(value):
    return q(json.dumps(value, separators=(",", ":")))


# --- REST requests ------------------------------------------------------------------------
REST_PATHS = {
    "a": "/api/pg_orders?filter=" + json_q({"o_orderstatus": "F", "o_totalprice": {"$gt": 100000}})
         + "&sort=-o_orderdate,o_orderkey&pageSize=50",
    "b": "/api/pg_orders/__ORDERKEY__",
    "c": "/api/pg_orders:aggregate?measures=" + json_q(
        [{"aggregation": "count", "alias": "n"}, {"field": "o_totalprice", "aggregation": "sum", "alias": "total"}])
         + "&dimensions=" + json_q([{"field": "o_orderstatus"}]) + "&sort=o_orderstatus",
    "d": "/api/pg_orders?filter=" + q('{"o_custkey":__CUSTKEY__}') + "&sort=-o_orderdate,o_orderkey&pageSize=10"
         "&fields=" + ",".join(D_ORDER_COLUMNS + ["customer." + c for c in D_CUSTOMER_COLUMNS]),
    "e": "/api/pg_region",  # POST, then DELETE /api/pg_region/<key>
    "f": "/api/batch",
}
REST_INSERT = '{"r_regionkey":__KEY__,"r_name":"X","r_comment":"bench"}'
REST_BATCH = ('{"operations":[{"action":"create","collection":"pg_region","values":' + REST_INSERT + '},'
              '{"action":"destroy","collection":"pg_region","key":__KEY__}]}')

# --- PostGraphile (shared/bench/api/ops.py's documents) -------------------------------------
PGL_PLUGINS = [("@graphile/pg-aggregates@0.2.0-rc.2", "@graphile/pg-aggregates", "PgAggregatesPreset"),
               ("postgraphile-plugin-connection-filter@4.0.1", "postgraphile-plugin-connection-filter",
                "PostGraphileConnectionFilterPreset")]


def camel(column):
    first, *rest = column.split("_")
    return first + "".join(p.title() for p in rest)


ALL_ORDER_FIELDS = " ".join(camel(c) for c in ORDER_COLUMNS)
PGL = {  # op: (document, variables with "__X__" placeholders for numbers)
    "a": ('{ orders(first: 50, filter: {oOrderstatus: {equalTo: "F"}, oTotalprice: {greaterThan: "100000"}}, '
          'orderBy: [O_ORDERDATE_DESC, O_ORDERKEY_ASC]) { nodes { %s } } }' % ALL_ORDER_FIELDS, None),
    "b": ("query($k: BigInt!) { order(oOrderkey: $k) { %s } }" % ALL_ORDER_FIELDS, {"k": "__ORDERKEY__"}),
    "c": ("{ orders { groupedAggregates(groupBy: O_ORDERSTATUS) { keys distinctCount { oOrderkey } "
          "sum { oTotalprice } } } }", None),
    "d": ("query($c: Int!) { customer(cCustkey: $c) { cCustkey cName ordersByOCustkey(first: 10, "
          "orderBy: [O_ORDERDATE_DESC, O_ORDERKEY_ASC]) { nodes { oOrderkey oOrderdate oTotalprice oOrderstatus } } } }",
          {"c": "__CUSTKEY__#"}),
    "e": ('mutation($k: Int!) { a: createRegion(input: {region: {rRegionkey: $k, rName: "X", rComment: "bench"}}) '
          '{ region { rRegionkey } } b: deleteRegion(input: {rRegionkey: $k}) { region { rRegionkey } } }',
          {"k": "__KEY__#"}),
}


PGL["f"] = PGL["e"]


def pgl_body(op):
    """The request body; "__X__#" marks a number (BigInt variables travel as strings)."""
    document, variables = PGL[op]
    body = json.dumps({"query": document, **({"variables": variables} if variables else {})})
    for placeholder in ("__ORDERKEY__", "__CUSTKEY__", "__KEY__"):
        body = body.replace(f'"{placeholder}#"', placeholder)
    return body


WRK_LUA = r"""
-- Written by benches/rest_vs_pgbench.py. Env: WRK_METHOD, WRK_PATH, BODY, AUTH (header value or
-- empty), PAIR ("1": POST WRK_PATH with BODY, then DELETE WRK_PATH/<key> once the 201 is back).
-- Placeholders, replaced per request in the path and the body:
--   __ORDERKEY__ a random existing order key (i = 1..150000, (i / 8) * 32 + i % 8)
--   __CUSTKEY__  a random customer with orders (i = 1..10000, ((i - 1) / 2) * 3 + (i - 1) % 2 + 1)
--   __KEY__      a random fresh key 1000000..2000000000
local method = os.getenv("WRK_METHOD") or "GET"
local path = os.getenv("WRK_PATH")
local body = os.getenv("BODY") or ""
local auth = os.getenv("AUTH") or ""
local pair = os.getenv("PAIR") == "1"
local templated = string.find(path .. body, "__", 1, true) ~= nil
wrk.method = method
if body ~= "" then wrk.headers["Content-Type"] = "application/json" end
if auth ~= "" then wrk.headers["Authorization"] = auth end
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
local inserted = {}   -- keys created and not yet deleted (this thread)
posts, deletes, bad = 0, 0, 0
function init(args)
  math.randomseed(os.time() * 100 + (id or 0))
end
local function fill(s, k)
  local i = math.random(1, 150000)
  local j = math.random(1, 10000)
  s = string.gsub(s, "__ORDERKEY__", tostring(math.floor(i / 8) * 32 + i % 8))
  s = string.gsub(s, "__CUSTKEY__", tostring(math.floor((j - 1) / 2) * 3 + (j - 1) % 2 + 1))
  return (string.gsub(s, "__KEY__", k))
end
function request()
  if pair then
    local k = table.remove(inserted)
    if k then
      deletes = deletes + 1
      return wrk.format("DELETE", path .. "/" .. k, nil, nil)
    end
    posts = posts + 1
    return wrk.format("POST", path, nil, fill(body, tostring(math.random(1000000, 2000000000))))
  end
  if not templated then return wrk.format(nil, path, nil, body ~= "" and body or nil) end
  local k = tostring(math.random(1000000, 2000000000))
  local b = fill(body, k)
  return wrk.format(nil, fill(path, k), nil, b ~= "" and b or nil)
end
if pair then
  function response(status, headers, response_body)
    if status == 201 then
      local k = string.match(response_body, '"r_regionkey":%s*(%d+)')
      if k then table.insert(inserted, k) end
    elseif status ~= 200 then
      bad = bad + 1
    end
  end
  function done(summary, latency, requests)
    local p, d, b = 0, 0, 0
    for _, t in ipairs(threads) do
      p = p + t:get("posts"); d = d + t:get("deletes"); b = b + t:get("bad")
    end
    io.write(string.format("PAIRS posts=%d deletes=%d bad=%d\n", p, d, b))
  end
end
"""


# --- HTTP helpers -------------------------------------------------------------------------
def request(method, url, body=None, headers=None, timeout=60):
    """(status, parsed JSON or text)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def fill_keys(text, orderkey=1, custkey=1, key=CHECK_INSERT_KEY):
    return (text.replace("__ORDERKEY__", str(orderkey)).replace("__CUSTKEY__", str(custkey))
            .replace("__KEY__", str(key)))


# --- expected answers (psql) --------------------------------------------------------------
def expected_order(key):
    rows = norm_rows(psql(f"SELECT * FROM orders WHERE o_orderkey = {key}"))
    if len(rows) != 1:
        fail(f"order {key} not found in {base.SCHEMA}.orders")
    return rows[0]


def expected_d(custkey):
    customer = norm_rows(psql(f"SELECT {', '.join(D_CUSTOMER_COLUMNS)} FROM customer WHERE c_custkey = {custkey}"))
    orders = norm_rows(psql(f"SELECT {', '.join(D_ORDER_COLUMNS)} FROM orders WHERE o_custkey = {custkey} "
                            "ORDER BY o_orderdate DESC, o_orderkey LIMIT 10"))
    if len(customer) != 1 or not orders:
        fail(f"customer {custkey} missing or without orders")
    return customer[0], orders


def region_row(key):
    return norm_rows(psql(f"SELECT * FROM region WHERE r_regionkey = {key}"))


def clean_region():
    """Deletes the rows (e) left and rewrites `region` (VACUUM FULL): every (e) leaves a dead row,
    and with autovacuum off or late (it is off on some machines here) runs slowed as they piled
    up (180,000 after one bench: 4,500 → 2,800 op/s over three reps), whichever system came
    later. A plain VACUUM left the primary key's index grown by every run (2.5 MB for five rows
    after one bench; the faster system grows it more): each run now starts from the same table."""
    psql("DELETE FROM region WHERE r_regionkey >= 1000000")
    psql("VACUUM FULL region")  # its own command: VACUUM cannot run inside the DELETE's transaction


def problem(status, answer):
    return f"HTTP {status}: {json.dumps(answer)[:300] if not isinstance(answer, str) else answer[:300]}"


# --- answer checks ------------------------------------------------------------------------
def check_tributary(trib, ops):
    """{op: problem} for the ops whose answers differ from psql's."""
    url, auth = trib.base, trib.headers()
    problems = {}
    if "a" in ops:
        expected = norm_rows(psql(SQL["a"]))
        status, answer = request("GET", url + REST_PATHS["a"], headers=auth)
        if status != 200:
            problems["a"] = problem(status, answer)
        else:
            got = norm_rows([[row.get(c) for c in ORDER_COLUMNS] for row in answer["data"]])
            if got != expected or any(list(row) != ORDER_COLUMNS for row in answer["data"]):
                problems["a"] = f"WRONG: got {len(got)} rows {got[:2]}..., expected {len(expected)} {expected[:2]}..."
    if "b" in ops:
        for key in CHECK_ORDERKEYS:
            status, answer = request("GET", url + fill_keys(REST_PATHS["b"], orderkey=key), headers=auth)
            if status != 200:
                problems["b"] = f"key {key}: " + problem(status, answer)
                break
            got = norm_rows([list(answer["data"].values())])[0]
            if got != expected_order(key) or list(answer["data"]) != ORDER_COLUMNS:
                problems["b"] = f"WRONG key {key}: got {answer['data']}, expected {expected_order(key)}"
                break
    if "c" in ops:
        expected = norm_rows(psql(SQL["c"]))
        status, answer = request("GET", url + REST_PATHS["c"], headers=auth)
        if status != 200:
            problems["c"] = problem(status, answer)
        else:
            got = norm_rows([[g.get("o_orderstatus"), g.get("n"), g.get("total")] for g in answer["data"]])
            if got != expected:
                problems["c"] = f"WRONG: got {answer['data']}, expected {expected}"
    if "d" in ops:
        for custkey in CHECK_CUSTKEYS:
            customer, orders = expected_d(custkey)
            status, answer = request("GET", url + fill_keys(REST_PATHS["d"], custkey=custkey), headers=auth)
            if status != 200:
                problems["d"] = f"customer {custkey}: " + problem(status, answer)
                break
            rows = answer["data"]
            got_orders = norm_rows([[r.get(c) for c in D_ORDER_COLUMNS] for r in rows])
            got_customers = [norm_rows([[(r.get("customer") or {}).get(c) for c in D_CUSTOMER_COLUMNS]])[0]
                             for r in rows]
            shapes = {tuple(r) for r in rows}
            customer_shapes = {frozenset(r.get("customer") or {}) for r in rows}
            if (got_orders != orders or any(c != customer for c in got_customers)
                    or shapes != {tuple(D_ORDER_COLUMNS + ["customer"])}
                    or customer_shapes != {frozenset(D_CUSTOMER_COLUMNS)}):
                problems["d"] = (f"WRONG customer {custkey}: got {json.dumps(rows)[:400]}, expected customer "
                                 f"{customer} and orders {orders}")
                break
    if "e" in ops:
        clean_region()
        key = CHECK_INSERT_KEY
        status, answer = request("POST", url + REST_PATHS["e"], fill_keys(REST_INSERT), headers=auth)
        row = region_row(key)
        if status != 201:
            problems["e"] = "insert: " + problem(status, answer)
        elif row != [[norm(key), "X", "bench"]] or norm_rows([list(answer["data"].values())]) != row:
            problems["e"] = f"WRONG insert: answer {answer}, row in PostgreSQL {row}"
        else:
            status, answer = request("DELETE", f"{url}{REST_PATHS['e']}/{key}", headers=auth)
            if status != 200 or region_row(key):
                problems["e"] = f"delete: {problem(status, answer)}; row still there: {bool(region_row(key))}"
        clean_region()
    if "f" in ops:
        clean_region()
        key = CHECK_INSERT_KEY
        status, answer = request("POST", url + REST_PATHS["f"], fill_keys(REST_BATCH), headers=auth)
        expected = [[norm(key), "X", "bench"]]
        if status != 200:
            problems["f"] = "batch: " + problem(status, answer)
        elif (norm_rows([list(answer["data"][0]["data"].values())]) != expected
              or norm_rows([list(answer["data"][1]["data"].values())]) != expected or region_row(key)):
            problems["f"] = f"WRONG batch: answer {answer}, row left in PostgreSQL: {region_row(key)}"
        clean_region()
    return problems


def check_anchor(ops, answer, write):
    """{op: problem} for an anchor system, its answers against psql's: `answer(op, **keys)` gives
    (a) and (c) as rows, (b) as one order's row, (d) as ([c_custkey, c_name], its orders' rows),
    each in psql's column order; `write()` runs (e)'s one request of both mutations and answers
    the key it inserted and whether the row is left."""
    problems = {}
    for op in ops:
        try:
            if op in ("a", "c"):
                got, expected = norm_rows(answer(op)), norm_rows(psql(SQL[op]))
                if (got if op == "a" else sorted(got)) != expected:
                    problems[op] = f"WRONG: got {got[:2]}..., expected {expected[:2]}..."
            elif op == "b":
                for key in CHECK_ORDERKEYS:
                    got = norm_rows([answer("b", orderkey=key)])[0]
                    if got != expected_order(key):
                        problems[op] = f"WRONG key {key}: got {got}, expected {expected_order(key)}"
                        break
            elif op == "d":
                for custkey in CHECK_CUSTKEYS:
                    customer, orders = expected_d(custkey)
                    got, got_orders = answer("d", custkey=custkey)
                    if norm_rows([got])[0] != customer[:2] or norm_rows(got_orders) != orders:
                        problems[op] = f"WRONG customer {custkey}: got {got} {got_orders}, expected {customer[:2]} {orders}"
                        break
            elif op in ("e", "f"):
                inserted, left = write()
                if str(inserted) != str(CHECK_INSERT_KEY) or left:
                    problems[op] = f"WRONG: inserted {inserted}, row left: {left}"
        except (ValueError, KeyError, TypeError) as e:
            problems[op] = f"ERROR {type(e).__name__}: {e}"
    return problems


def check_postgraphile(pgl, ops):
    def ask(op, **keys):
        status, answer = request("POST", pgl.url, fill_keys(pgl_body(op), **keys))
        if status != 200 or not isinstance(answer, dict) or answer.get("errors") or not answer.get("data"):
            raise ValueError(problem(status, answer))
        return answer["data"]

    def answer(op, **keys):
        data = ask(op, **keys)
        if op == "a":
            return [list(n.values()) for n in data["orders"]["nodes"]]
        if op == "b":
            return list(data["order"].values())
        if op == "c":
            return [[g["keys"][0], g["distinctCount"]["oOrderkey"], g["sum"]["oTotalprice"]]
                    for g in data["orders"]["groupedAggregates"]]
        customer = data["customer"]
        return ([customer["cCustkey"], customer["cName"]],
                [list(n.values()) for n in customer["ordersByOCustkey"]["nodes"]])

    def write():
        clean_region()
        inserted = ask("e")["a"]["region"]["rRegionkey"]
        left = region_row(CHECK_INSERT_KEY)
        clean_region()
        return inserted, left

    return check_anchor(ops, answer, write)


def check_directus(dx, ops):
    """Directus' answers (its data is a copy: the same values)."""
    headers = {"authorization": f"Bearer {directus.TOKEN}"}

    def answer(op, **keys):
        status, answer = request("GET", dx.base + fill_keys(directus.PATHS[op], **keys), None, headers)
        if status != 200 or not isinstance(answer, dict) or "data" not in answer:
            raise ValueError(problem(status, answer))
        data = answer["data"]
        if op == "a":
            return [[row[c] for c in ORDER_COLUMNS] for row in data]
        if op == "b":
            return [data[c] for c in ORDER_COLUMNS]
        if op == "c":
            return [[g["o_orderstatus"], g["count"], g["sum"]["o_totalprice"]] for g in data]
        return ([data["c_custkey"], data["c_name"]],
                [[o[c] for c in D_ORDER_COLUMNS] for o in data["orders"]])

    def write():
        directus.clean_region()
        status, answer = request("POST", dx.url, fill_keys(directus.MUTATION), headers)
        if status != 200 or not isinstance(answer, dict) or not answer.get("data"):
            raise ValueError(problem(status, answer))
        left = directus.psql(f"SELECT * FROM region WHERE r_regionkey = {CHECK_INSERT_KEY}")
        directus.clean_region()
        return answer["data"]["a"]["r_regionkey"], left

    return check_anchor(ops, answer, write)


# --- load ---------------------------------------------------------------------------------
def run_tributary(system, op, conc, duration, lua):
    """(ops/s, p50 ms, p99 ms, notes) for Tributary's REST API and op."""
    auth = f"Bearer {base.TOKEN}"
    if op == "e":
        rate, p50, p99, notes, text = base.run_wrk(system.base + REST_PATHS["e"], REST_INSERT, auth, conc,
                                                   duration, lua, {"WRK_METHOD": "POST", "PAIR": "1"})
        clean_region()
        m = re.search(r"PAIRS posts=(\d+) deletes=(\d+) bad=(\d+)", text)
        notes = ", ".join(filter(None, [notes, m.group(0)[6:] if m else "wrk printed no PAIRS line"]))
        return rate / 2, p50, p99, notes  # one op = POST + DELETE
    if op == "f":
        result = base.run_wrk(system.base + REST_PATHS["f"], REST_BATCH, auth, conc, duration, lua,
                              {"WRK_METHOD": "POST"})[:4]
        clean_region()
        return result
    return base.run_wrk(system.base + REST_PATHS[op], "", auth, conc, duration, lua, {"WRK_METHOD": "GET"})[:4]


def run_http(system, op, conc, duration, lua, tributary=run_tributary):
    """(ops/s, p50 ms, p99 ms, notes) for one HTTP system and op."""
    if system.name == "tributary":
        return tributary(system, op, conc, duration, lua)
    if system.name == "directus":
        auth = f"Bearer {directus.TOKEN}"
        if op in ("e", "f"):
            result = base.run_wrk(system.url, directus.MUTATION, auth, conc, duration, lua,
                                  {"WRK_METHOD": "POST"})[:4]
            directus.clean_region()
            return result
        return base.run_wrk(system.base + directus.PATHS[op], "", auth, conc, duration, lua,
                            {"WRK_METHOD": "GET"})[:4]
    result = base.run_wrk(system.url, pgl_body(op), "", conc, duration, lua, {"WRK_METHOD": "POST"})[:4]
    if op in ("e", "f"):
        clean_region()
    return result


def report_cpu(ops, concs, cpu):
    """The CPU each HTTP system and PostgreSQL spent per operation (medians over the runs): how
    much of the machine an operation takes, steadier than rates when the machine's speed drifts."""
    if not cpu:
        return
    say("")
    say("| op | c | tributary CPU ms/op (server + PostgreSQL) | postgraphile CPU ms/op (server + PostgreSQL) "
        "| postgraphile / tributary |")
    say("|---|---|---|---|---|")
    for op in ops:
        for conc in concs:
            cells, totals = [], {}
            for name in ["tributary", "postgraphile"]:
                runs = cpu.get((op, conc, name))
                if not runs:
                    cells.append("-")
                    continue
                server, db = (statistics.median(run[i] for run in runs) for i in range(2))
                totals[name] = server + db
                cells.append(f"{server + db:.3f} ({server:.3f} + {db:.3f})")
            ratio = (f"{totals['postgraphile'] / totals['tributary']:.2f}"
                     if totals.get("tributary") and "postgraphile" in totals else "-")
            say(f"| {LABEL[op]} | {conc} | {' | '.join(cells)} | {ratio} |")
    say("(CPU of the server process and of the PostgreSQL backends serving the bench's database over each "
        "timed run, from /proc, per operation completed; PostgreSQL's background processes and the load "
        "tool are not counted)")


def main(doc=__doc__, check=check_tributary, tributary=run_tributary, note_e=True, known_ops=REST_OPS):
    """The benchmark; benches/graphql_vs_pgbench.py passes its own checks and runner for Tributary."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("TRIBUTARY_BIN"),
                        help="a built tributary binary (default: cargo build --release)")
    parser.add_argument("--conc", default="16,64")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each HTTP system's runs")
    parser.add_argument("--reps", type=int, default=1, help="runs per (op, concurrency, system); median shown")
    parser.add_argument("--ops", default=",".join(known_ops))
    parser.add_argument("--systems", default="pgbench,tributary,postgraphile",
                        help="any of pgbench, tributary, postgraphile (directus: see the top of this file)")
    parser.add_argument("--pool-size", type=int, default=16,
                        help="connections Tributary's source pool and PostGraphile may open (default 16)")
    parser.add_argument("--check-only", action="store_true", help="check the answers, time nothing")
    args = parser.parse_args()
    ops = args.ops.split(",")
    concs = [int(c) for c in args.conc.split(",")]
    wanted = args.systems.split(",")
    for op in ops:
        if op not in known_ops:
            fail(f"unknown op {op} ({', '.join(known_ops)})")
    for name in wanted:
        if name not in ("pgbench", "tributary", "postgraphile", "directus"):
            fail(f"unknown system {name}")

    base.require("psql", "install postgresql-client")
    if "pgbench" in wanted:
        base.require("pgbench", "install postgresql-client (it ships pgbench)")
    if "tributary" in wanted or "postgraphile" in wanted:
        base.require("wrk", "install Debian's package `wrk` (apt-get install wrk)")
    try:
        psql("SELECT 1", search_path=False)
    except RuntimeError as e:
        fail(f"PostgreSQL at {base.PG['host']}:{base.PG['port']} does not answer as {base.PG['user']}: {e}")
    base.load_schema()
    # The key formulas reach exactly the existing orders and the customers with orders.
    reached = psql("SELECT (SELECT count(*) FROM orders WHERE o_orderkey IN "
                   "(SELECT (i / 8) * 32 + i % 8 FROM generate_series(1, 150000) i)), "
                   "(SELECT count(DISTINCT o_custkey) FROM orders WHERE o_custkey IN "
                   "(SELECT ((i - 1) / 2) * 3 + (i - 1) % 2 + 1 FROM generate_series(1, 10000) i)), "
                   "(SELECT count(DISTINCT o_custkey) FROM orders)")[0]
    if reached != ["150000", "10000", "10000"]:
        fail(f"the random-key formulas reach {reached} (expected 150000 orders, 10000 of 10000 customers with orders)")
    clean_region()

    systems, lua_dir = {}, tempfile.mkdtemp(prefix="rest-bench-wrk-")
    lua = os.path.join(lua_dir, "request.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    results, problems = {}, {}  # (op, conc, system) -> [(rate, p50, p99, notes)]; (system, op) -> why not timed
    try:
        if "tributary" in wanted:
            systems["tributary"] = base.Tributary(args.binary, args.pool_size)
            for op, why in check(systems["tributary"], ops).items():
                problems[("tributary", op)] = why
        if "postgraphile" in wanted:
            systems["postgraphile"] = base.PostGraphile(args.pool_size, PGL_PLUGINS, ["PgIndexBehaviorsPlugin"])
            for op, why in check_postgraphile(systems["postgraphile"], ops).items():
                problems[("postgraphile", op)] = why
        if "directus" in wanted:
            systems["directus"] = directus.Directus(args.pool_size)
            for op, why in check_directus(systems["directus"], ops).items():
                problems[("directus", op)] = why
        for (name, op), why in sorted(problems.items()):
            say(f"NOT TIMED {name} {op}: {why}")
        say(f"answers checked against psql: ops {','.join(ops)} for {', '.join(systems) or 'no HTTP system'}; "
            f"{len(problems)} problem(s)")
        if args.check_only:
            return
        load = os.getloadavg()
        say(f"SF0.1 in PostgreSQL {base.SCHEMA}; {args.duration} s per run, {args.reps} run(s), "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        cpu = collections.defaultdict(list)  # (op, conc, system): [(server, PostgreSQL) ms per op]
        for op in ops:
            for conc in concs:
                order = [s for s in ["pgbench", "tributary", "postgraphile", "directus"]
                         if s in wanted and (s, op) not in problems]
                if "pgbench" in wanted and TARGETS[op][0] == "pgbench" and args.pool_size < conc:
                    # The floor again with as many clients as Tributary's pool has connections:
                    # what PostgreSQL itself serves at that concurrency.
                    order.append(POOL_FLOOR)
                for name in order:
                    if name in systems and args.warmup > 0:
                        run_http(systems[name], op, conc, args.warmup, lua, tributary)
                for _ in range(args.reps):  # interleaved, so drift hits every system alike
                    for name in order:
                        if name == "pgbench":
                            r = base.run_pgbench(PGBENCH[op], conc, args.duration)
                            if op in ("e", "f"):
                                clean_region()
                        elif name == POOL_FLOOR:
                            r = base.run_pgbench(PGBENCH[op], args.pool_size, args.duration)
                        else:
                            before = base.cpu_ticks(systems[name].process.pid)
                            r = run_http(systems[name], op, conc, args.duration, lua, tributary)
                            after = base.cpu_ticks(systems[name].process.pid)
                            cpu[(op, conc, name)].append(base.cpu_per_op(before, after, r[0] * args.duration))
                        results.setdefault((op, conc, name), []).append(r)
                        say(f"  {op} c={conc:<3} {name:<12} {r[0]:10.1f} op/s  p50 {r[1]:.2f} ms  "
                            f"p99 {r[2]:.2f} ms  {r[3]}")
    finally:
        for system in systems.values():
            system.close()
        shutil.rmtree(lua_dir, ignore_errors=True)
        try:
            clean_region()
        except RuntimeError:
            pass

    def median(key):
        runs = results.get(key)
        if not runs:
            return None
        return tuple(statistics.median(r[i] for r in runs) for i in range(3)) + (
            "; ".join(sorted({r[3] for r in runs if r[3]})),)

    load = os.getloadavg()
    say("")
    say("| op | c | pgbench op/s | tributary op/s | postgraphile op/s | directus op/s | tributary / pgbench "
        "| tributary / postgraphile | tributary / directus | goal |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    for op in ops:
        for conc in concs:
            cells, rates = [], {}
            for name in ["pgbench", "tributary", "postgraphile", "directus"]:
                m = median((op, conc, name))
                if m is None:
                    cells.append(f"not timed ({problems[(name, op)].split()[0].lower()})"
                                 if (name, op) in problems else "-")
                    continue
                rates[name] = m[0]
                cells.append(f"{m[0]:.0f} ({m[1]:.2f}/{m[2]:.2f} ms){' ' + m[3] if m[3] else ''}")

            def ratio(other):
                return f"{rates['tributary'] / rates[other]:.3f}" if "tributary" in rates and rates.get(other) else "-"

            against, floor = TARGETS[op]
            if op == "e" and note_e:
                # PostGraphile's (e) is one request of two mutations in one transaction: (f)'s shape.
                goal = f"- (two requests, two transactions; f is PostGraphile's shape, >= {floor}x)"
            elif "tributary" in rates and rates.get(against):
                met = rates["tributary"] / rates[against] >= floor
                goal = f"{'met' if met else 'MISSED'} (>= {floor}x {against})"
            else:
                goal = f"- (>= {floor}x {against})"
            say(f"| {LABEL[op]} | {conc} | {' | '.join(cells)} | {ratio('pgbench')} | {ratio('postgraphile')} "
                f"| {ratio('directus')} | {goal} |")
    for op in ops:
        for conc in concs:
            floor, trib = median((op, conc, POOL_FLOOR)), median((op, conc, "tributary"))
            if floor and trib:
                say(f"{LABEL[op]}, c={conc}: pgbench with {args.pool_size} clients (as many as Tributary's pool "
                    f"has connections) {floor[0]:.0f} op/s; tributary / that {trib[0] / floor[0]:.3f}")
    e_note = "; tributary's e: HTTP requests/s / 2, latency per request" if note_e else ""
    say(f"(operations/s, p50/p99 latency in ms; median of {args.reps} run(s){e_note}; "
        f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    report_cpu(ops, concs, cpu)
    if problems:
        fail("wrong answers or errors (not timed):\n  " + "\n  ".join(
            f"{name} {op}: {why}" for (name, op), why in sorted(problems.items())))


if __name__ == "__main__":
    main()
