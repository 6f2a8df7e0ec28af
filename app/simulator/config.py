"""Simulator settings: the MAAS version to imitate, API keys, latency, import timing and seed."""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.simulator.faults import FaultRule

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "2.9",
    "3.0",
    "3.1",
    "3.2",
    "3.3",
    "3.4",
    "3.5",
    "3.6",
    "3.7",
    "3.8",
)

# The point release each supported series reports from `version/` unless told otherwise.
_DEFAULT_POINT_RELEASES: dict[str, str] = {
    "2.9": "2.9.2",
    "3.0": "3.0.1",
    "3.1": "3.1.3",
    "3.2": "3.2.11",
    "3.3": "3.3.10",
    "3.4": "3.4.7",
    "3.5": "3.5.6",
    "3.6": "3.6.2",
    "3.7": "3.7.1",
    "3.8": "3.8.0~beta6",
}

# nginx in front of regiond sets `client_max_body_size 10M` for /MAAS (maas-api.md §3).
NGINX_MAX_BODY_BYTES = 10 * 1024 * 1024

_KEY_ALPHABET = string.ascii_letters + string.digits


def _random_key(rng: random.Random) -> str:
    # consumer key and token key are 18 characters, the token secret 32 (maas-api.md §2.1).
    return ":".join("".join(rng.choice(_KEY_ALPHABET) for _ in range(n)) for n in (18, 18, 32))


def split_api_key(value: str) -> tuple[str, str, str]:
    """Split `consumer_key:token_key:token_secret`; raise ValueError unless there are 3 parts."""
    parts = value.strip().split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"API key must be consumer_key:token_key:token_secret, got {value!r}")
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True, slots=True)
class MaasVersion:
    """One MAAS release series and the wire differences that follow from it (maas-api.md §0)."""

    major: int
    minor: int
    full: str

    @classmethod
    def parse(cls, value: str) -> MaasVersion:
        pieces = value.strip().split(".")
        if len(pieces) < 2 or not pieces[0].isdigit() or not pieces[1].isdigit():
            raise ValueError(f"maas_version must look like '3.5', got {value!r}")
        series = f"{int(pieces[0])}.{int(pieces[1])}"
        if series not in SUPPORTED_VERSIONS:
            supported = ", ".join(SUPPORTED_VERSIONS)
            raise ValueError(f"maas_version {value!r} is not supported; use one of {supported}")
        full = value.strip() if len(pieces) > 2 else _DEFAULT_POINT_RELEASES[series]
        return cls(int(pieces[0]), int(pieces[1]), full)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    @property
    def series(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def version_string(self) -> str:
        """What `version/` reports, shaped like a snap build (`3.5.6-16414-g.1c2d3e4f5`)."""
        digest = hashlib.sha1(self.full.encode(), usedforsecurity=False).hexdigest()
        build = 10000 + int(digest[:4], 16) % 7000
        return f"{self.full}-{build}-g.{digest[4:13]}"

    @property
    def subversion(self) -> str:
        # 3.x answers "" ("unused, kept for API compatibility"); 2.9 filled it (maas-api.md §1.1).
        return "" if self.at_least(3, 0) else "9164-g.ac176b5c4"

    @property
    def entitlements(self) -> bool:
        """3.8 replaced admin checks with OpenFGA entitlements (maas-api.md §4.4)."""
        return self.at_least(3, 8)

    @property
    def use_tz(self) -> bool:
        """3.6 set USE_TZ, so timestamps carry a `Z` suffix (maas-api.md §4.1)."""
        return self.at_least(3, 6)

    @property
    def has_last_deployed(self) -> bool:
        return self.at_least(3, 4)

    @property
    def has_base_image(self) -> bool:
        """`base_image` is accepted since 3.1 and returned since 3.5 (maas-api.md §5.2, §5.4)."""
        return self.at_least(3, 1)

    @property
    def returns_base_image(self) -> bool:
        return self.at_least(3, 5)

    @property
    def has_generated_type(self) -> bool:
        return not self.at_least(3, 5)

    @property
    def local_file_store(self) -> bool:
        """3.5 moved files from PostgreSQL large objects to the region's disk (maas-api.md §0)."""
        return self.at_least(3, 5)

    @property
    def strips_custom_prefix(self) -> bool:
        return not self.at_least(3, 8)

    @property
    def accepts_content_upload(self) -> bool:
        return not self.at_least(3, 8)

    @property
    def detailed_not_found(self) -> bool:
        """3.3+ answers `No <Model> matches the given query.`; older answers `Not Found`."""
        return self.at_least(3, 3)

    @property
    def op_path_suffix(self) -> bool:
        return self.at_least(3, 3)

    @property
    def refuses_commissioning_delete(self) -> bool:
        return not self.at_least(3, 8)

    @property
    def commissioning_release(self) -> str:
        return "jammy" if self.at_least(3, 2) else "focal"

    @property
    def seeded_releases(self) -> tuple[str, ...]:
        """The Ubuntu LTS releases a region of this version selects: those out when it was
        (3.1 shipped before jammy, 3.4 before noble)."""
        if self.at_least(3, 5):
            return ("jammy", "noble")
        if self.at_least(3, 2):
            return ("focal", "jammy")
        return ("bionic", "focal")

    @property
    def typed_oauth_bad_request(self) -> bool:
        """Only HEAD (3.8) answers a non-integer oauth_timestamp with 400 (maas-api.md §2.3)."""
        return self.at_least(3, 8)

    @property
    def django_int_error(self) -> bool:
        """Django 3.2+ (MAAS 3.x) words a bad integer id as `Field 'id' expected a number...`."""
        return self.at_least(3, 0)


@dataclass
class SimulatorConfig:
    """How the simulator behaves at start and after every `POST /_simulator/reset`."""

    admin_key: str | None = None
    user_key: str | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 0
    maas_version: str = "3.5"
    import_duration_s: float = 10.0
    extra_resources: int = 0
    faults: tuple[FaultRule, ...] = field(default_factory=tuple)
    max_body_bytes: int = NGINX_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        MaasVersion.parse(self.maas_version)
        for name in ("latency_ms", "jitter_ms", "import_duration_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.extra_resources < 0:
            raise ValueError("extra_resources must not be negative")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        admin = split_api_key(self.resolved_admin_key())
        user = split_api_key(self.resolved_user_key())
        if admin[0] == user[0] or admin[1] == user[1]:
            raise ValueError("admin_key and user_key need different consumer and token keys")
        self.faults = tuple(self.faults)

    @staticmethod
    def default_keys(seed: int) -> tuple[str, str]:
        """Deterministic MAAS-shaped (admin, user) keys derived from `seed`."""
        rng = random.Random(f"maas-simulator-keys:{seed}")  # nosec B311  # reproducible demo keys
        return _random_key(rng), _random_key(rng)

    def resolved_admin_key(self) -> str:
        return self.admin_key if self.admin_key is not None else self.default_keys(self.seed)[0]

    def resolved_user_key(self) -> str:
        return self.user_key if self.user_key is not None else self.default_keys(self.seed)[1]

    @property
    def version(self) -> MaasVersion:
        return MaasVersion.parse(self.maas_version)
