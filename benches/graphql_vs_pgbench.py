#!/usr/bin/env python3
"""The GraphQL API (POST /graphql, Hasura's shape) on one PostgreSQL source against pgbench and
PostGraphile 5: the same operations (a)-(e), data, systems, answer checks and report as
benches/rest_vs_pgbench.py (read its header), with Tributary asked in GraphQL:

  a  { pg_orders(where: {o_orderstatus: {_eq: "F"}, o_totalprice: {_gt: "100000"}},
                 order_by: [{o_orderdate: desc}, {o_orderkey: asc}], limit: 50) { <all columns> } }
  b  query($k: Int!) { pg_orders_by_pk(o_orderkey: $k) { <all columns> } }
  c  { pg_orders_group_by(by: [o_orderstatus], order_by: {keys: {o_orderstatus: asc}})
       { keys { o_orderstatus } aggregate { count sum { o_totalprice } } } }
  d  query($c: Int!) { pg_customer_by_pk(c_custkey: $c) { c_custkey c_name
       orders(order_by: [{o_orderdate: desc}, {o_orderkey: asc}], limit: 10)
       { o_orderkey o_orderdate o_totalprice o_orderstatus } } }
  e  mutation($k: Int!) { insert_pg_region_one(object: {r_regionkey: $k, r_name: "X",
       r_comment: "bench"}) { r_regionkey } delete_pg_region_by_pk(r_regionkey: $k) { r_regionkey } }

(d) is the nested request PostGraphile answers too: the customer by key and its 10 latest orders
(two reads: the customer, then its orders by o_custkey with the order and limit pushed down).
(e) is one request and one transaction holding both mutations, as PostGraphile's (e) and the
pgbench floor's transaction: one operation per request.

Usage: benches/graphql_vs_pgbench.py [--binary PATH] [--conc 16,64] [--duration 10] [--reps 1]
           [--ops a,b,c,d,e] [--systems pgbench,tributary,postgraphile] [--pool-size 16]
Example: benches/graphql_vs_pgbench.py --binary /var/tmp/tributary-target/release/tributary
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_vs_pgbench as base  # noqa: E402
import rest_vs_pgbench as rest  # noqa: E402  (operations, PostGraphile, wrk script, checks, report)
from api_vs_pgbench import ORDER_COLUMNS, norm, norm_rows, psql  # noqa: E402

ALL_ORDER_COLUMNS = " ".join(ORDER_COLUMNS)
D_COLUMNS = " ".join(rest.D_ORDER_COLUMNS)
DOCUMENTS = {  # op: (document, variables with "__X__#" placeholders for numbers)
    "a": ('{ pg_orders(where: {o_orderstatus: {_eq: "F"}, o_totalprice: {_gt: "100000"}}, '
          'order_by: [{o_orderdate: desc}, {o_orderkey: asc}], limit: 50) { %s } }' % ALL_ORDER_COLUMNS, None),
    "b": ("query($k: Int!) { pg_orders_by_pk(o_orderkey: $k) { %s } }" % ALL_ORDER_COLUMNS,
          {"k": "__ORDERKEY__#"}),
    "c": ("{ pg_orders_group_by(by: [o_orderstatus], order_by: {keys: {o_orderstatus: asc}}) "
          "{ keys { o_orderstatus } aggregate { count sum { o_totalprice } } } }", None),
    "d": ("query($c: Int!) { pg_customer_by_pk(c_custkey: $c) { c_custkey c_name "
          "orders(order_by: [{o_orderdate: desc}, {o_orderkey: asc}], limit: 10) { %s } } }" % D_COLUMNS,
          {"c": "__CUSTKEY__#"}),
    "e": ('mutation($k: Int!) { insert_pg_region_one(object: {r_regionkey: $k, r_name: "X", r_comment: "bench"}) '
          '{ r_regionkey } delete_pg_region_by_pk(r_regionkey: $k) { r_regionkey } }', {"k": "__KEY__#"}),
}


def body(op):
    """The request body; "__X__#" marks a number the wrk script fills in."""
    document, variables = DOCUMENTS[op]
    text = json.dumps({"query": document, **({"variables": variables} if variables else {})})
    for placeholder in ("__ORDERKEY__", "__CUSTKEY__", "__KEY__"):
        text = text.replace(f'"{placeholder}#"', placeholder)
    return text


def check(trib, ops):
    """{op: problem} for the ops whose GraphQL answers differ from psql's."""
    problems = {}

    def ask(op, **keys):
        status, answer = rest.request("POST", trib.base + "/graphql", rest.fill_keys(body(op), **keys),
                                      headers=trib.headers())
        if status != 200 or not isinstance(answer, dict) or answer.get("errors") or not answer.get("data"):
            raise ValueError(rest.problem(status, answer))
        return answer["data"]

    for op in ops:
        try:
            if op == "a":
                rows = ask("a")["pg_orders"]
                got = norm_rows([[row.get(c) for c in ORDER_COLUMNS] for row in rows])
                expected = norm_rows(psql(rest.SQL["a"]))
                if got != expected:
                    problems[op] = f"WRONG: got {len(got)} rows {got[:2]}..., expected {len(expected)} {expected[:2]}..."
            elif op == "b":
                for key in rest.CHECK_ORDERKEYS:
                    row = ask("b", orderkey=key)["pg_orders_by_pk"]
                    got = norm_rows([[row.get(c) for c in ORDER_COLUMNS]])[0]
                    if got != rest.expected_order(key):
                        problems[op] = f"WRONG key {key}: got {row}, expected {rest.expected_order(key)}"
                        break
            elif op == "c":
                groups = ask("c")["pg_orders_group_by"]
                got = norm_rows([[g["keys"]["o_orderstatus"], g["aggregate"]["count"],
                                  g["aggregate"]["sum"]["o_totalprice"]] for g in groups])
                expected = norm_rows(psql(rest.SQL["c"]))
                if got != expected:
                    problems[op] = f"WRONG: got {got}, expected {expected}"
            elif op == "d":
                for custkey in rest.CHECK_CUSTKEYS:
                    customer, orders = rest.expected_d(custkey)
                    data = ask("d", custkey=custkey)["pg_customer_by_pk"]
                    got = norm_rows([[data["c_custkey"], data["c_name"]]])[0]
                    got_orders = norm_rows([[o.get(c) for c in rest.D_ORDER_COLUMNS] for o in data["orders"]])
                    if got != customer[:2] or got_orders != orders:
                        problems[op] = f"WRONG customer {custkey}: got {data}, expected {customer[:2]} {orders}"
                        break
            elif op == "e":
                rest.clean_region()
                data = ask("e")
                inserted = data["insert_pg_region_one"]["r_regionkey"]
                deleted = data["delete_pg_region_by_pk"]["r_regionkey"]
                if norm(inserted) != norm(rest.CHECK_INSERT_KEY) or norm(deleted) != norm(rest.CHECK_INSERT_KEY) \
                        or rest.region_row(rest.CHECK_INSERT_KEY):
                    problems[op] = f"WRONG: {data}, row left: {rest.region_row(rest.CHECK_INSERT_KEY)}"
                rest.clean_region()
        except (ValueError, KeyError, TypeError) as e:
            problems[op] = f"ERROR {type(e).__name__}: {e}"
    return problems


def run(system, op, conc, duration, lua):
    """(ops/s, p50 ms, p99 ms, notes) for Tributary's GraphQL API and op."""
    result = base.run_wrk(system.base + "/graphql", body(op), f"Bearer {base.TOKEN}", conc, duration, lua,
                          {"WRK_METHOD": "POST"})[:4]
    if op == "e":
        rest.clean_region()
    return result


if __name__ == "__main__":
    rest.main(doc=__doc__, check=check, tributary=run, note_e=False, known_ops=rest.OPS)
