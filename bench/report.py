"""Summarises bench/load.sh's results.tsv: medians over rounds, and the targets.

Usage: python3 bench/report.py results.tsv
"""

import csv
import statistics
import sys
from collections import defaultdict

FIELDS = ["rps", "p50_us", "p99_us", "proxy_cpu_us_per_req", "mock_cpu_us_per_req", "requests", "failed",
          "background_cpu_pct"]


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def main(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    runs = defaultdict(list)
    order = []
    for row in rows:
        key = (row["target"], row["scenario"])
        if key not in runs:
            order.append(key)
        runs[key].append(row)

    def median(key, field):
        values = [number(row[field]) for row in runs.get(key, [])]
        values = [value for value in values if value is not None]
        return statistics.median(values) if values else None

    def spread(key, field):
        values = [number(row[field]) for row in runs.get(key, [])]
        values = [value for value in values if value is not None]
        return (min(values), max(values)) if values else None

    header = f"{'target':<7} {'scenario':<11} {'req/s':>9} {'p50 µs':>9} {'p99 µs':>9} {'CPU-µs/req':>12} " \
             f"{'(min-max)':>13} {'mock-µs/req':>11} {'failed':>6} {'bg%':>5}"
    print(header)
    rank = {"direct": 0, "nginx": 1, "llmux": 2}
    for key in sorted(order, key=lambda k: (rank.get(k[0], 9), order.index(k))):
        cpu = median(key, "proxy_cpu_us_per_req")
        low_high = spread(key, "proxy_cpu_us_per_req")
        failed = sum(int(row["failed"]) for row in runs[key])
        print(f"{key[0]:<7} {key[1]:<11} {median(key, 'rps'):>9.0f} {median(key, 'p50_us'):>9.0f} "
              f"{median(key, 'p99_us'):>9.0f} {('-' if cpu is None else f'{cpu:.1f}'):>12} "
              f"{('-' if low_high is None else f'{low_high[0]:.1f}-{low_high[1]:.1f}'):>13} "
              f"{median(key, 'mock_cpu_us_per_req') or 0:>11.1f} {failed:>6} {median(key, 'background_cpu_pct') or 0:>5.0f}")
    print()

    scenarios = []
    for _, scenario in order:
        if scenario not in scenarios:
            scenarios.append(scenario)
    print("llmux vs nginx (medians over the rounds; the llmux/nginx ratio of each round after them):")
    print(f"  {'scenario':<11} {'nginx CPU':>10} {'llmux CPU':>10} {'CPU ratio':>10} {'per round':>24} "
          f"{'nginx +p99 µs':>14} {'llmux +p99 µs':>14} {'ratio':>7}")
    worst = None
    c1 = None

    def show(value):
        return "n/a" if value is None else f"{value:.0f}"

    for scenario in scenarios:
        nginx, llmux, direct = ("nginx", scenario), ("llmux", scenario), ("direct", scenario)
        nc, lc = median(nginx, "proxy_cpu_us_per_req"), median(llmux, "proxy_cpu_us_per_req")
        ratio = lc / nc if nc and lc else None
        per_round = []
        ratios = []
        by_round = {row["round"]: number(row["proxy_cpu_us_per_req"]) for row in runs.get(nginx, [])}
        for row in runs.get(llmux, []):
            n = by_round.get(row["round"])
            value = number(row["proxy_cpu_us_per_req"])
            if n and value:
                per_round.append(f"{value / n:.2f}")
                ratios.append(value / n)
        added = {}
        for target in ("nginx", "llmux"):
            if runs.get(direct) and runs.get((target, scenario)):
                added[target] = median((target, scenario), "p99_us") - median(direct, "p99_us")
        p99_ratio = added["llmux"] / added["nginx"] if len(added) == 2 and added["nginx"] > 0 else None
        print(f"  {scenario:<11} {('n/a' if nc is None else f'{nc:.1f}'):>10} {('n/a' if lc is None else f'{lc:.1f}'):>10} "
              f"{('n/a' if ratio is None else f'{ratio:.2f}x'):>10} {' '.join(per_round):>24} "
              f"{show(added.get('nginx')):>14} {show(added.get('llmux')):>14} "
              f"{('n/a' if p99_ratio is None else f'{p99_ratio:.2f}x'):>7}")
        # The verdict compares llmux and nginx within each round (the same run), then
        # takes the median over rounds.
        same_run = statistics.median(ratios) if ratios else ratio
        if "stream" not in scenario and same_run is not None:
            worst = same_run if worst is None else max(worst, same_run)
        if scenario == "c1" and len(added) == 2:
            c1 = added
    print()
    if worst is not None:
        verdict = "MET" if worst <= 2.0 else "NOT MET"
        print(f"target CPU/req <= 2x nginx (non-streaming; median over rounds of the same-round ratio): {verdict} "
              f"(worst {worst:.2f}x; long-term goal 1.3x)")
    if c1:
        verdict = "MET" if c1["llmux"] <= 2 * c1["nginx"] else "NOT MET"
        print(f"target added p99 at c=1 <= 2x nginx: {verdict} (nginx +{c1['nginx']:.0f} µs, llmux +{c1['llmux']:.0f} µs)")


if __name__ == "__main__":
    main(sys.argv[1])
