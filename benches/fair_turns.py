#!/usr/bin/env python3
"""What a busy source's fair turns (src/admission.rs) give a light caller while another floods
it: one API key ("flood") runs benches/rest_vs_pgbench.py's group-by (c) at --flood-conc clients
— DB-bound, every pooled connection busy, the rest queued — while another runs its by-key read
(b) at --light-conc clients. The light requests are sent twice: with the flood's own key (one
caller: its requests wait in line behind the flood's, first come, first served, as any pool
alone serves them) and with a key of their own (the callers take turns). Reported: the light
reads' requests/s and p50/p99 in both runs and alone, the flood's requests/s, and the ratio of
the light p50 in line to its p50 in turns. A last run gives each caller a share of the pool
(`pool.max_per_caller` = pool size - light clients): the flood can no longer hold every
connection. Same server, same source, same data (SF0.1 in PostgreSQL's tpch_pg_all, set up as
benches/api_vs_pgbench.py does).

  python3 fair_turns.py --binary <release tributary> [--duration 10] [--pool-size 16]
"""

import argparse
import json
import os
import tempfile
import threading
import time

import api_vs_pgbench as base
import rest_vs_pgbench as rest
from api_vs_pgbench import fail, say


def new_key(trib, name):
    """An admin API key named `name`: its Authorization header."""
    created = base.post(trib.base + "/admin/keys", {"name": name, "role": "admin"}, trib.headers())
    return f"Bearer {created['key']}"


def wrk(trib, op, auth, conc, duration, lua):
    """(req/s, p50 ms, p99 ms, notes) of `op`'s REST request with `auth`."""
    return base.run_wrk(trib.base + rest.REST_PATHS[op], "", auth, conc, duration, lua,
                        {"WRK_METHOD": "GET"})[:4]


def together(trib, flood_auth, light_auth, args, lua):
    """The flood and the light reads at once: (flood's result, light's result)."""
    results = {}

    def flood():
        results["flood"] = wrk(trib, "c", flood_auth, args.flood_conc, args.duration + 2, lua)

    runner = threading.Thread(target=flood)
    runner.start()
    # The light reads start once the flood fills the pool and ends before it does.
    time.sleep(1)
    results["light"] = wrk(trib, "b", light_auth, args.light_conc, args.duration, lua)
    runner.join()
    return results["flood"], results["light"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("TRIBUTARY_BIN"),
                        help="a built tributary binary (default: cargo build --release)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of light reads per run")
    parser.add_argument("--flood-conc", type=int, default=64)
    parser.add_argument("--light-conc", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=16)
    args = parser.parse_args()
    base.require("wrk", "install Debian's package `wrk` (apt-get install wrk)")
    base.load_schema()
    lua = os.path.join(tempfile.mkdtemp(prefix="fair-turns-wrk-"), "request.lua")
    with open(lua, "w") as f:
        f.write(rest.WRK_LUA)
    trib = base.Tributary(args.binary, args.pool_size)
    try:
        flood_auth, light_auth = new_key(trib, "flood"), new_key(trib, "light")
        # Warm both paths (the aggregate's request shape, the by-key fast path).
        wrk(trib, "c", flood_auth, 4, 2, lua)
        wrk(trib, "b", light_auth, 4, 2, lua)
        alone = wrk(trib, "b", light_auth, args.light_conc, args.duration, lua)
        in_line = together(trib, flood_auth, flood_auth, args, lua)
        in_turns = together(trib, flood_auth, light_auth, args, lua)
        share = args.pool_size - args.light_conc
        status, answer = rest.request("PATCH", trib.base + "/admin/sources/pg",
                                      json.dumps({"pool": {"max_size": args.pool_size, "max_per_caller": share}}),
                                      trib.headers())
        if status != 200:
            fail(f"PATCH pool.max_per_caller: HTTP {status}: {answer}")
        wrk(trib, "c", flood_auth, 4, 2, lua)
        shared = together(trib, flood_auth, light_auth, args, lua)
    finally:
        trib.close()

    say(f"pool {args.pool_size}; flood: (c) group-by at {args.flood_conc} clients; "
        f"light: (b) by key at {args.light_conc} clients; {args.duration} s")
    say(f"{'run':<34} {'light req/s':>11} {'p50 ms':>9} {'p99 ms':>9} {'flood req/s':>11}  notes")
    rows = [("light alone", alone, None),
            ("light with the flood's key (line)", in_line[1], in_line[0]),
            ("light with its own key (turns)", in_turns[1], in_turns[0]),
            (f"turns, each caller's share {share}", shared[1], shared[0])]
    for name, (rate, p50, p99, notes), flood in rows:
        flood_rate = f"{flood[0]:>11.0f}" if flood else f"{'':>11}"
        more = "; ".join(filter(None, [notes, flood[3] if flood else ""]))
        say(f"{name:<34} {rate:>11.0f} {p50:>9.2f} {p99:>9.2f} {flood_rate}  {more}")
    if in_turns[1][1] <= 0:
        fail("no light reads were timed in turns")
    say(f"light p50 in line / in turns: {in_line[1][1] / in_turns[1][1]:.1f}x; "
        f"p99 {in_line[1][2] / in_turns[1][2]:.1f}x; flood rate in turns / in line: "
        f"{in_turns[0][0] / in_line[0][0]:.2f}; with shares, light p50 {shared[1][1]:.2f} ms")


if __name__ == "__main__":
    main()
