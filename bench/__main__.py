"""`python -m bench [name ...]`: run the registered benchmarks and print their figures."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import Result, Section, format_table, load


def main(argv: list[str]) -> int:
    loads = [os.getloadavg()[0]]
    registry = load()
    unknown = [name for name in argv if name not in registry]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(registry)}")
        return 2
    results: list[Result] = []
    sections: list[Section] = []
    for name, run in registry.items():
        if argv and name not in argv:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        for item in run():
            if isinstance(item, Result):
                results.append(item)
            else:
                sections.append(item)
        loads.append(os.getloadavg()[0])
    print(format_table(results))
    if argv and sections:
        # A partial run leaves docs/ alone: its sections and their files go to a scratch dir.
        scratch = Path(tempfile.mkdtemp(prefix="bench-"))
        for section in sections:
            print(f"\n## {section.title}\n\n{section.markdown}")
            _write_files(section, scratch)
        print(f"\nwrote the sections' files to {scratch}")
    load_average, cpus = os.getloadavg()[0], os.cpu_count() or 1
    busy = load_average > cpus
    if busy:
        # Wall-clock figures on a machine this busy say more about the neighbours.
        print(f"note: load average {load_average:.1f} on {cpus} CPUs; figures are unreliable")
    if not argv:
        write_report(results, sections, REPORT, busy=busy, loads=loads)
        print(f"wrote {REPORT}")
    return 1 if any(r.passed is False for r in results) else 0


REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_report(
    results: list[Result],
    sections: list[Section],
    path: Path,
    *,
    busy: bool,
    loads: list[float],
) -> None:
    """docs/benchmarks.md: the machine, every figure as a ratio to its same-run baseline, then
    the benchmarks' own sections, their files (plots) beside the report."""
    machine = [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {_memory()}, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- load average (1 min) at the start: {loads[0]:.2f}, highest after a benchmark: "
        f"{max(loads):.2f}, at the end: {loads[-1]:.2f}"
        + (" (busy: figures unreliable)" if busy else ""),
    ]
    text = "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench`. Every figure is compared with a baseline measured in the",
            "same run, on the same machine; the ratio is what the target bounds. CPU figures",
            "are user + system time of the process measured (a server's from /proc), so they",
            "move less with the neighbours and the core's speed than wall-clock ones.",
            "",
            *machine,
            "",
            format_table(results, style="markdown"),
            "",
            *(f"## {s.title}\n\n{s.markdown}\n" for s in sections),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    for section in sections:
        _write_files(section, path.parent)


def _write_files(section: Section, directory: Path) -> None:
    for name, content in section.files.items():
        (directory / name).write_bytes(content)


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
