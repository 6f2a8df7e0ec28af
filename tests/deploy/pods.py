"""What a rendered chart gives the gateway container, as the kubelet would: its environment
(env and envFrom) and its mounted ConfigMap and Secret files, re-created under a directory."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class PodView:
    """The container's environment, with paths under its mounts moved under `root`."""

    env: dict[str, str]
    root: Path
    mounts: tuple[str, ...]

    def path(self, in_pod: str) -> Path:
        """Where a file the container sees at `in_pod` lives on this machine."""
        return self.root / in_pod.lstrip("/")


class Cluster:
    """The objects a pod can refer to: the rendered ones and those the operator made."""

    def __init__(self, *objects: Manifest) -> None:
        self._objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    def data(self, kind: str, name: str) -> dict[str, bytes]:
        """A ConfigMap's or a Secret's keys and bytes, as a volume or a key reference reads them."""
        found = self._objects.get((kind, name))
        assert found is not None, f"the pod would not start: no {kind} {name}"
        if kind == "Secret":
            return {
                **{k: v.encode() for k, v in (found.get("stringData") or {}).items()},
                **{k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()},
            }
        return {
            **{k: v.encode() for k, v in (found.get("data") or {}).items()},
            **{k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()},
        }

    def key(self, kind: str, reference: Manifest) -> str:
        data = self.data(kind, reference["name"])
        assert reference["key"] in data, f"the pod would not start: {kind} {reference} has no key"
        return data[reference["key"]].decode()


def pod_view(pod: Manifest, container_name: str, cluster: Cluster, root: Path) -> PodView:
    """The container's view of `pod` (a pod spec): every volume of the pod must resolve, as the
    kubelet would not start it otherwise; the container's own mounts are written under root."""
    volumes = {v["name"]: _volume_files(v, cluster) for v in pod.get("volumes", [])}
    container = next(c for c in pod["containers"] if c["name"] == container_name)
    mounts = container.get("volumeMounts", [])
    for mount in mounts:
        files = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[mount["subPath"]])
            continue
        target.mkdir(parents=True, exist_ok=True)
        for relative, content in files.items():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).write_bytes(content)
    paths = tuple(m["mountPath"] for m in mounts if m["mountPath"].startswith("/"))
    env = {name: _moved(value, paths, root) for name, value in _env(container, cluster).items()}
    return PodView(env, root, paths)


def _volume_files(volume: Manifest, cluster: Cluster) -> dict[str, bytes]:
    if "emptyDir" in volume:
        return {}
    if "secret" in volume:
        source, data = volume["secret"], cluster.data("Secret", volume["secret"]["secretName"])
    elif "configMap" in volume:
        source, data = volume["configMap"], cluster.data("ConfigMap", volume["configMap"]["name"])
    else:
        raise AssertionError(f"volume {volume['name']}: a kind these tests do not re-create")
    if "items" not in source:
        return data
    missing = [item["key"] for item in source["items"] if item["key"] not in data]
    assert not missing, f"the pod would not start: volume {volume['name']} lacks {missing}"
    return {item["path"]: data[item["key"]] for item in source["items"]}


def _env(container: Manifest, cluster: Cluster) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind, reference = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        prefix = source.get("prefix", "")
        for key, value in cluster.data(kind, reference["name"]).items():
            env[prefix + key] = value.decode()
    # env comes after envFrom and wins over it, as in Kubernetes.
    for variable in container.get("env", []):
        if "value" in variable:
            assert "$(" not in variable["value"], "dependent variables are not re-created here"
            env[variable["name"]] = variable["value"]
            continue
        source = variable["valueFrom"]
        if "secretKeyRef" in source:
            env[variable["name"]] = cluster.key("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            env[variable["name"]] = cluster.key("ConfigMap", source["configMapKeyRef"])
        else:
            raise AssertionError(f"{variable['name']}: a source these tests do not re-create")
    return env


def _moved(value: str, mount_paths: tuple[str, ...], root: Path) -> str:
    """A path under one of the container's mounts, moved under root; anything else as is."""
    for mount_path in mount_paths:
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(root) + value
    return value
