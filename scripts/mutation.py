"""Mutation testing of the modules that guard correctness (make mutation): mutmut on one module at
a time, against the tests that exercise it, bounded in time; prints the score of each module."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "tests" / "mutation-equivalents.txt"
THRESHOLD = 90.0
# A test run that failed, however it failed: mutmut's statuses that mean the mutant was noticed.
KILLED = frozenset({"killed", "timeout", "caught by type check", "segfault"})


@dataclass(frozen=True)
class Target:
    """One module and the pytest arguments that select its tests (unit-level ones first).

    `functions`: when only part of a module decides what the issue guards (the service's
    invalidation, the access decisions of identity), the functions or `Class.method`s (fnmatch
    patterns) whose mutants count; empty: all of them."""

    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    @property
    def slug(self) -> str:
        return self.module.replace(".", "-")

    def patterns(self) -> list[str]:
        """mutmut's mutant-name patterns: functions are `x_name`, methods `xǁClassǁname`."""
        patterns = []
        for function in self.functions:
            owner, dot, name = function.rpartition(".")
            mangled = f"xǁ{owner}ǁ{name}" if dot else f"x_{name}"
            patterns.append(f"{self.module}.{mangled}__mutmut_*")
        return patterns

    def counts(self, mutant: str) -> bool:
        patterns = self.patterns()
        return not patterns or any(fnmatch(mutant, p) for p in patterns)


TARGETS = (
    Target("app/cache/entities.py", ("tests/cache/test_entities.py",)),
    Target("app/cache/responses.py", ("tests/cache/test_entities.py",)),
    Target("app/cache/reads.py", ("tests/cache/test_entities.py",)),
    Target("app/core/permissions.py", ("tests/core/test_permissions.py",)),
    Target("app/auth/rate_limits.py", ("tests/auth/test_rate_limits.py",)),
    Target(
        "app/auth/tokens.py",
        ("tests/auth/test_tokens.py",),
        ("new_token", "token_digest", "token_line", "parse_tokens", "TokenStore.*"),
    ),
    Target(
        "app/auth/identity.py",
        ("tests/auth/test_identity.py",),
        (
            "Identity.*",
            "authorization_of",
            "CallerResolver.authenticate",
            "CallerResolver._from_header",
            "CallerResolver._token",
            "CallerResolver._maas_key",
            "CallerResolver.confirm*",
            "CallerResolver.throttle",
            "CallerResolver.spend",
            "CallerResolver._bucket",
            "_seconds",
        ),
    ),
    Target(
        "app/maas/breaker.py",
        ("tests/faults/test_breaker.py", "-k", "not maas_recovers and not maas_client_errors"),
    ),
    Target("app/maas/errors.py", ("tests/maas/test_maas_errors.py",)),
    Target(
        "app/service/boot.py",
        ("tests/service/test_boot.py",),
        (
            "BootService._invalidate_*",
            "BootService._adapt_ttls",
            "BootService.ttl",
            "BootService.delete_*",
            "BootService.upload_boot_resource",
            "BootService.start_import",
            "BootService.stop_import",
            "BootService.create_*",
            "BootService.update_*",
            "BootService.stored_response",
            "BootService.store_response",
        ),
    ),
)


@dataclass
class Score:
    target: Target
    statuses: Counter[str]
    survivors: list[str]
    equivalent: int
    seconds: float
    finished: bool

    @property
    def mutants(self) -> int:
        return sum(self.statuses.values())

    @property
    def killed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in KILLED)

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0


def read_equivalents() -> dict[str, str]:
    """Mutant name -> why no test can tell it from the original, one a line."""
    equivalents: dict[str, str] = {}
    for number, raw in enumerate(EQUIVALENTS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip() or "__mutmut_" not in name:
            sys.exit(f"{EQUIVALENTS.name}:{number}: expected '<mutant name> <why equivalent>'")
        equivalents[name] = reason.strip()
    return equivalents


def pyproject_for(target: Target) -> str:
    """The project's pyproject.toml with this module and its tests in [tool.mutmut]."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    header = "[tool.mutmut]\n"
    if header not in text:
        sys.exit("pyproject.toml has no [tool.mutmut] table")
    own = (
        f"only_mutate = {json.dumps([target.path])}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(list(target.tests))}\n"
    )
    return text.replace(header, header + own, 1)


def prepare(target: Target) -> Path:
    """A fresh copy of the sources and tests for this module alone: no earlier verdict is kept,
    and the checkout's own files are never touched."""
    workdir = WORK / target.slug
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    ignore = shutil.ignore_patterns("node_modules", "__pycache__", "static", "vendor")
    shutil.copytree(ROOT / "app", workdir / "app", ignore=ignore)
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore)
    (workdir / "pyproject.toml").write_text(pyproject_for(target), encoding="utf-8")
    return workdir


def run_mutmut(target: Target, workdir: Path, max_children: int, timeout: float) -> bool:
    """mutmut run in `workdir`, its output in mutmut.log; False when stopped at `timeout`."""
    mutmut = Path(sys.executable).parent / "mutmut"
    command = [str(mutmut), "run", "--max-children", str(max_children), *target.patterns()]
    with (workdir / "mutmut.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  # our own venv's mutmut, fixed arguments
            command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Its workers are in its session: stop all of them, not only mutmut itself.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return False
    if process.returncode != 0:
        tail = (workdir / "mutmut.log").read_text(errors="replace")[-3000:]
        sys.exit(f"mutmut failed on {target.path} (exit {process.returncode}):\n{tail}")
    return True


def score(target: Target, workdir: Path, equivalents: dict[str, str]) -> tuple[Score, list[str]]:
    """The module's verdicts, and what is wrong with the equivalents listed for it."""
    meta = workdir / "mutants" / f"{target.path}.meta"
    if not meta.exists():  # stopped before its mutants were made, or never run
        return Score(target, Counter(), [], 0, 0.0, False), [f"{target.path}: no verdicts"]
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    statuses: Counter[str] = Counter()
    survivors = []
    problems = []
    equivalent = 0
    for name, code in sorted(exit_codes.items()):
        if not target.counts(name):
            continue
        status = status_by_exit_code[code]
        statuses[status] += 1
        if name in equivalents:
            if status in KILLED:
                problems.append(f"{name} is listed as equivalent but a test kills it")
            equivalent += 1
        elif status not in KILLED:
            survivors.append(f"{name} ({status})")
    for name in equivalents:
        if name.startswith(target.module + ".") and name not in exit_codes:
            problems.append(f"{name} is listed as equivalent but no longer exists")
    return Score(target, statuses, survivors, equivalent, 0.0, True), problems


def report(scores: list[Score]) -> None:
    print()
    print(f"{'module':<26} {'mutants':>7} {'killed':>6} {'survived':>8} {'equiv.':>6}", end="")
    print(f" {'score':>7} {'time':>7}")
    for s in scores:
        left = s.mutants - s.killed - s.equivalent
        mark = "" if s.finished else "  (stopped at the time bound)"
        print(f"{s.target.path:<26} {s.mutants:>7} {s.killed:>6} {left:>8}", end="")
        print(f" {s.equivalent:>6} {s.percent:>6.1f}% {s.seconds:>6.0f}s{mark}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--module", action="append", default=[], help="only paths containing this")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per module")
    parser.add_argument("--tests", nargs="+", help="pytest arguments instead of the module's own")
    parser.add_argument(
        "--report", action="store_true", help="score the last run's verdicts again, run nothing"
    )
    args = parser.parse_args()
    targets = [t for t in TARGETS if not args.module or any(m in t.path for m in args.module)]
    if not targets:
        parser.error(f"no module matches {args.module}")
    if args.tests:
        if len(targets) != 1:
            parser.error("--tests needs --module to pick one module")
        targets = [Target(targets[0].path, tuple(args.tests), targets[0].functions)]
    equivalents = read_equivalents()
    scores: list[Score] = []
    problems: list[str] = []
    for target in targets:
        print(f"{target.path}: mutmut against {' '.join(target.tests)}", flush=True)
        started = time.monotonic()
        workdir = WORK / target.slug
        finished = True
        if not args.report:
            workdir = prepare(target)
            finished = run_mutmut(target, workdir, args.max_children, args.timeout)
        result, wrong = score(target, workdir, equivalents)
        result.seconds, result.finished = time.monotonic() - started, finished
        scores.append(result)
        problems += wrong
        for survivor in result.survivors:
            print(f"  survived: {survivor}")
        if result.survivors:
            print(f"  (cd {workdir.relative_to(ROOT)} && mutmut show NAME) shows one")
    report(scores)
    low = [s.target.path for s in scores if s.percent < THRESHOLD or not s.finished]
    for problem in problems:
        print(f"{EQUIVALENTS.name}: {problem}")
    if low:
        print(f"below {THRESHOLD:.0f}% or unfinished: {', '.join(low)}")
    return 1 if low or problems else 0


if __name__ == "__main__":
    sys.exit(main())
