"""`maas-gateway images apply`: bring MAAS's boot sources and selections to a YAML file's
declared state through the gateway's API, as terraform plans and applies."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from tqdm import tqdm

from app.cli.reporting import add_token_options, fail, resolve_token
from app.core.errors import ValidationFailed
from app.service import images_document

APPLY_PATH = "/api/v1/images/apply"
READY_PATH = "/api/v1/boot-resources/ready"
POLL_SECONDS = 1.0


class ApplyFailed(Exception):
    """The gateway refused, failed, or did not finish what the file asks for."""


def register(commands: Any) -> None:
    images = commands.add_parser("images", help="declare boot sources and selections in a file")
    actions = images.add_subparsers(dest="action", required=True)
    apply = actions.add_parser(
        "apply",
        help="plan, then apply, the file's declared state",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    apply.add_argument("file", help="YAML with boot-sources and their selections")
    apply.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    apply.add_argument("--prune", action="store_true", help="delete what the file leaves out")
    apply.add_argument("--wait", action="store_true", help="wait until the images are complete")
    apply.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    apply.add_argument("--gateway", default="http://127.0.0.1:8000", help="the gateway's base URL")
    add_token_options(apply)
    apply.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        document = read_document(path)
    except ApplyFailed as error:
        return fail(str(error))
    try:
        token = resolve_token(args)
    except OSError as error:
        return fail(f"{args.token_file}: {error.strerror}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=args.gateway, headers=headers, timeout=60) as client:
            plan = post_apply(client, document, dry_run=True, prune=args.prune)["plan"]
            if not plan:
                print("no changes")
                return 0
            print_plan(plan)
            if args.dry_run:
                return 0
            done = post_apply(client, document, dry_run=False, prune=args.prune)
            print(f"applied {len(done['plan'])} changes; import started")
            if args.wait:
                wait_for_images(client, document, timeout=args.timeout)
    except ApplyFailed as error:
        return fail(str(error))
    except httpx.HTTPError as error:
        return fail(f"the gateway at {args.gateway} did not answer: {error}")
    return 0


def read_document(path: Path) -> dict[str, Any]:
    """The file's document, checked as the gateway checks it; a problem names its line."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except OSError as error:
        raise ApplyFailed(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ApplyFailed(f"{where}: not YAML: {getattr(error, 'problem', error)}") from None
    try:
        images_document(document)
    except ValidationFailed as error:
        lines = [
            f"{path}:{_line_of(node, field)}: {field}: {'; '.join(messages)}"
            for field, messages in error.fields.items()
        ]
        raise ApplyFailed("\n".join(lines)) from None
    assert isinstance(document, dict)  # images_document accepted it
    return document


def _line_of(node: yaml.Node | None, field: str) -> int:
    """The line of the deepest part of `field` (boot-sources.0.url) the file has."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in field.split("."):
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def post_apply(
    client: httpx.Client, document: Mapping[str, Any], *, dry_run: bool, prune: bool
) -> dict[str, Any]:
    params = {"dry_run": str(dry_run).lower(), "prune": str(prune).lower()}
    response = client.post(APPLY_PATH, json=document, params=params)
    if response.status_code != 200:
        raise ApplyFailed(_refusal(response))
    result: dict[str, Any] = response.json()
    return result


def print_plan(plan: Iterable[Mapping[str, Any]]) -> None:
    print("plan:")
    for step in plan:
        print(f"  {step['description']}")


def wait_for_images(client: httpx.Client, document: Mapping[str, Any], *, timeout: float) -> None:
    """A progress bar per image until every declared selection's images are complete."""
    wanted = [
        (s["os"], s["release"], s.get("arches", ["*"]))
        for source in document["boot-sources"]
        for s in source.get("selections", [])
    ]
    bars: dict[str, tqdm[Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        while True:
            images = [
                r for os, release, arches in wanted for r in _images(client, os, release, arches)
            ]
            for image in images:
                _draw(bars, image)
            if images and all(i["complete"] for i in images):
                print(f"{len(images)} images complete")
                return
            if time.monotonic() >= deadline:
                raise ApplyFailed(f"images not complete after {timeout:g} s")
            time.sleep(POLL_SECONDS)
    finally:
        for bar in bars.values():
            bar.close()


def _images(client: httpx.Client, os: str, release: str, arches: list[str]) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"os": os, "release": release}
    if "*" not in arches:
        params["arch"] = arches
    response = client.get(READY_PATH, params=params)
    if response.status_code != 200:
        raise ApplyFailed(_refusal(response))
    resources: list[dict[str, Any]] = response.json()["resources"]
    return resources


def _draw(bars: dict[str, tqdm[Any]], image: Mapping[str, Any]) -> None:
    name = f"{image['name']} {image['architecture']}"
    bar = bars.get(name)
    if bar is None:
        bar = bars[name] = tqdm(
            total=100.0, desc=name, position=len(bars), unit="%", bar_format=_BAR, leave=True
        )
    progress = 100.0 if image["complete"] else float(image["progress"])
    bar.update(progress - bar.n)


_BAR = "{desc} [{bar:30}] {n:5.1f}% {elapsed} elapsed, {remaining} left"


def _refusal(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"
    fields = error.get("details", {}).get("fields") or {}
    said = "; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items())
    return f"HTTP {response.status_code} {error['code']}: {error['message']}" + (
        f" ({said})" if said else ""
    )
