"""Read the Dockerfile and .dockerignore, and replay a stage's steps outside Docker.

No Docker engine runs here or in CI, so the install test replays the `build` stage's own
instructions (ENV, WORKDIR, COPY, RUN) with every absolute path moved under a scratch root.
Only what that stage uses is supported; anything else fails loudly rather than being skipped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_FLAG = re.compile(r"--([a-z-]+)=(\S+)\s+")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: str

    def json_args(self) -> list[str]:
        """The exec (JSON array) form of CMD, ENTRYPOINT or a HEALTHCHECK's CMD."""
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(item, str) for item in value)
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"expected one {keyword} in stage {self.name}, found {len(found)}"
        return found[0]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


def _logical_lines(text: str) -> list[str]:
    """Instructions one per line: continuations joined, comment lines dropped (as Docker does)."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return lines


def expand(value: str, variables: Mapping[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip() + " "
        while match := _FLAG.match(rest):
            flags[match.group(1)] = match.group(2)
            rest = rest[match.end() :]
        rest = rest.strip()
        if keyword == "FROM":
            base, *alias = rest.split()
            name = alias[1] if len(alias) == 2 and alias[0].upper() == "AS" else None
            stages.append(Stage(base=expand(base, global_args), name=name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            arg_name, _, default = rest.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, flags, rest))
    return Dockerfile(global_args, stages)


def parse_env(args: str, variables: Mapping[str, str]) -> dict[str, str]:
    """ENV k=v k2="v 2" (the only form the Dockerfile uses), with $VAR expanded."""
    pairs: dict[str, str] = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        assert sep, f"ENV must use key=value, got {token!r}"
        pairs[key] = expand(value, {**variables, **pairs})
    return pairs


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if piece in ("**", "**/"):
            parts.append("(?:.*/)?" if piece == "**/" else ".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


@dataclass(frozen=True)
class DockerIgnore:
    """.dockerignore rules: the last match wins; a rule on a directory covers its files."""

    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            rules.append((negated, _pattern_regex(line.lstrip("!"))))
        return cls(tuple(rules))

    def excludes(self, relative: str) -> bool:
        parts = relative.strip("/").split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for negated, regex in self.rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                excluded = not negated
        return excluded


class StageRunner:
    """Replays one stage's ENV, WORKDIR, COPY and RUN with absolute paths moved under `root`."""

    def __init__(
        self,
        *,
        context: Path,
        root: Path,
        ignore: DockerIgnore,
        base_env: Mapping[str, str],
        other_stages: Mapping[tuple[str, str], Path | None],
    ) -> None:
        self.context = context
        self.root = root
        self.ignore = ignore
        self.env = dict(base_env)
        # (stage name, source path) -> a local stand-in for that stage's output; None skips it.
        self.other_stages = other_stages
        self.workdir = root
        self.skipped: list[str] = []

    def rebase(self, path: str) -> Path:
        return self.root / path.lstrip("/") if path.startswith("/") else self.workdir / path

    def run_stage(self, stage: Stage) -> None:
        for instruction in stage.instructions:
            handler = getattr(self, f"_do_{instruction.keyword.lower()}", None)
            assert handler is not None, f"the replay does not support {instruction.keyword}"
            handler(instruction)

    def _do_env(self, instruction: Instruction) -> None:
        for key, value in parse_env(instruction.args, self.env).items():
            # A single absolute path (VENV=/opt/venv) moves under root; PATH-like lists do not.
            is_path = value.startswith("/") and ":" not in value
            self.env[key] = str(self.rebase(value)) if is_path else value

    def _do_workdir(self, instruction: Instruction) -> None:
        self.workdir = self.rebase(expand(instruction.args, self.env))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def _do_copy(self, instruction: Instruction) -> None:
        *sources, dest = shlex.split(instruction.args)
        target = self.rebase(dest)
        stage = instruction.flags.get("from")
        for source in sources:
            if stage is not None:
                local = self.other_stages[(stage, source)]
                if local is None:
                    self.skipped.append(f"COPY --from={stage} {source}")
                    continue
                _copy_tree(local, target)
                continue
            path = self.context / source
            assert not self.ignore.excludes(source), f"{source} is in .dockerignore"
            if path.is_dir():
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    relative = file.relative_to(self.context).as_posix()
                    if not self.ignore.excludes(relative):
                        out = target / file.relative_to(path)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(file, out)
            else:
                out = target / path.name if dest.endswith("/") else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)

    def _do_run(self, instruction: Instruction) -> None:
        # Build-time flags (--mount=type=cache) only speed Docker up; the command is the same.
        result = subprocess.run(
            ["/bin/sh", "-c", instruction.args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (
            f"RUN failed ({result.returncode}): {instruction.args}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under root with its size and mtime, to detect any write."""
    state: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            info = path.lstat()
            state[path.relative_to(root).as_posix()] = (info.st_size, info.st_mtime_ns)
    return state
