"""The table of docs/scale.md from bench_scale.py's JSON (so the published numbers are the
measured ones): .venv/bin/python benchmarks/scale_table.py DIR/bench_scale.json"""

from __future__ import annotations

import json
import sys

PEERS = ("clarabel", "simplex", "ipm", "linprog")


def seconds(result: dict | None) -> str:
    if result is None or result.get("missing"):
        return "-"
    if "timeout" in result:
        return f"> {result['timeout']:.0f}"
    if "failed" in result:
        return "failed"
    return f"{result['seconds']:.3g}"


def ratio(peer: dict | None, ours: dict) -> str:
    if peer is None or "seconds" not in ours:
        return "-"
    if "timeout" in peer:
        return f"> {peer['timeout'] / ours['seconds']:.0f}"
    if "seconds" not in peer:
        return "-"
    return f"{peer['seconds'] / ours['seconds']:.3g}"


def main(path: str) -> None:
    data = json.loads(open(path).read())
    print("| task | multiplier | ours (CPU-s) | peak GB | Clarabel | HiGHS simplex | HiGHS IPM "
          "| linprog | fastest peer / ours | rel. difference from simplex |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data["rows"]:
        spec, results = row["spec"], row["results"]
        ours = results["ours"]
        name = (f"random, S = {spec['S']:,}" if spec["kind"] == "random"
                else f"grid {spec['size']} x {spec['size']}")
        peers = {p: results.get(p) for p in PEERS if p in results}
        ratios = [r for r in (ratio(p, ours) for p in peers.values()) if r != "-"]
        fastest = "-"
        if ratios:
            values = [float(r.lstrip("> ")) for r in ratios]
            k = min(range(len(values)), key=values.__getitem__)
            fastest = ratios[k]
        simplex = results.get("simplex", {})
        difference = (f"{abs(simplex['value'] - ours['value']) / abs(ours['value']):.1e}"
                      if "value" in simplex else "-")
        print(f"| {name} | {ours.get('multiplier', float('nan')):.3g} | {seconds(ours)} | "
              f"{ours.get('peak_gb', float('nan')):.2f} | "
              + " | ".join(seconds(peers.get(p)) for p in PEERS)
              + f" | {fastest} | {difference} |")
    print()
    print("| task | policy iteration | value iteration | pymdptoolbox PI | VI / PI | "
          "simulator tables (s) | simulator steps/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in data["rows"]:
        spec, results = row["spec"], row["results"]
        name = (f"random, S = {spec['S']:,}" if spec["kind"] == "random"
                else f"grid {spec['size']} x {spec['size']}")
        simulate = results.get("simulate", {})
        print(f"| {name} | {seconds(results.get('pi'))} | {seconds(results.get('vi'))} | "
              f"{seconds(results.get('mdptoolbox'))} | "
              f"{ratio(results.get('vi'), results.get('pi', {}))} | "
              f"{simulate.get('tables', float('nan')):.3g} | "
              f"{simulate.get('steps_per_second', float('nan')):.3g} |")
    print()
    print("| random task | ours (CPU-s) | passes over P_pi | ns per state per pass | "
          "passes x ns per state (s per 10^6 states) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in data["rows"]:
        spec, ours = row["spec"], row["results"]["ours"]
        if "passes" not in ours:
            continue
        print(f"| S = {spec['S']:,} | {seconds(ours)} | {ours['passes']} | "
              f"{ours['pass_ns_per_state']:.1f} | "
              f"{ours['passes'] * ours['pass_ns_per_state'] / 1e3:.3g} |")
    print()
    print("growth exponents of ours on random tasks: " + ", ".join(
        f"{k} {v:.3f}" for k, v in data["exponents"].items() if v is not None))


if __name__ == "__main__":
    main(sys.argv[1])
