"""`python -m bench [name ...]`: run the registered benchmarks and print their figures."""

from __future__ import annotations

import os
import sys

from bench import Result, format_table, load


def main(argv: list[str]) -> int:
    registry = load()
    unknown = [name for name in argv if name not in registry]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(registry)}")
        return 2
    results: list[Result] = []
    for name, run in registry.items():
        if argv and name not in argv:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.extend(run())
    print(format_table(results))
    load_average, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load_average > cpus:
        # Wall-clock figures on a machine this busy say more about the neighbours.
        print(f"note: load average {load_average:.1f} on {cpus} CPUs; figures are unreliable")
    return 1 if any(r.passed is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
