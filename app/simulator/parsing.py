"""Request parsing as tolerant as Django+piston: multipart (base64 parts), urlencoded, JSON, op."""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_to_bytes


class MalformedBody(ValueError):
    """The body cannot be parsed for its declared content type."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A multipart part that carried a `filename`: it lands in Django's request.FILES."""

    filename: str
    content_type: str
    data: bytes


class FormData:
    """A QueryDict-like multi-value mapping of fields, plus the file parts."""

    __slots__ = ("fields", "files", "is_json")

    def __init__(self, *, is_json: bool = False) -> None:
        self.fields: dict[str, list[str]] = {}
        self.files: dict[str, list[UploadedFile]] = {}
        # A JSON body fills request.data but leaves request.POST empty (maas-api.md §3).
        self.is_json = is_json

    def add(self, name: str, value: str) -> None:
        self.fields.setdefault(name, []).append(value)

    def add_file(self, name: str, upload: UploadedFile) -> None:
        self.files.setdefault(name, []).append(upload)

    def get(self, name: str) -> str | None:
        """The last value, as QueryDict's item access returns."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, ()))

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def file(self, name: str) -> UploadedFile | None:
        uploads = self.files.get(name)
        return uploads[-1] if uploads else None


def parse_query(query_string: bytes) -> FormData:
    form = FormData()
    if query_string:
        for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            form.add(key, value)
    return form


def _split_params(value: str) -> list[str]:
    """Split `a; b="x;y"; c` on semicolons outside quoted strings."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == ";" and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """`multipart/form-data; boundary="==x=="` → ("multipart/form-data", {"boundary": "==x=="})."""
    pieces = _split_params(value)
    main = pieces[0].lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        name, sep, raw = piece.partition("=")
        if not sep:
            continue
        name = name.strip().lower()
        raw = raw.strip()
        if name.endswith("*"):
            # RFC 2231: name*=utf-8''percent-encoded
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                params[name[:-1]] = unquote_to_bytes(encoded).decode(charset or "utf-8")
            except (LookupError, UnicodeDecodeError):
                params[name[:-1]] = encoded
        else:
            params.setdefault(name, _unquote(raw))
    return main, params


def _parse_part_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last: str | None = None
    for line in block.decode("latin-1").replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line[0] in " \t" and last is not None:
            # A folded header continues the previous one (RFC 5322 §2.2.3).
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers


def _decode_transfer(payload: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "base64":
        try:
            return binascii.a2b_base64(payload)
        except binascii.Error:
            # Django keeps the raw bytes when base64 decoding fails.
            return payload
    if encoding == "quoted-printable":
        return binascii.a2b_qp(payload)
    return payload


def parse_multipart(body: bytes, boundary: str | None) -> FormData:
    """Parse multipart/form-data the way Django does, including the quirks clients send.

    Handles base64 parts, quoted boundaries containing `=`, and the header-less empty
    part `--B\\r\\n\\r\\n--B--` that libmaas sends for bodies with no fields
    (maas-api.md §11).
    """
    if not boundary:
        raise MalformedBody("Invalid boundary in multipart: None")
    form = FormData()
    delimiter = b"--" + boundary.encode("latin-1")
    position = body.find(delimiter)
    if position < 0:
        return form
    position += len(delimiter)
    while position < len(body):
        if body.startswith(b"--", position):
            break
        line_end = body.find(b"\n", position)
        if line_end < 0:
            break
        start = line_end + 1
        following = body.find(b"\n" + delimiter, start - 1)
        if following < 0:
            part = body[start:]
            position = len(body)
        else:
            part = body[start:following]
            position = following + 1 + len(delimiter)
        if part.endswith(b"\r"):
            part = part[:-1]
        _add_part(form, part)
    return form


def _add_part(form: FormData, part: bytes) -> None:
    if not part:
        return
    if part.startswith((b"\r\n", b"\n")):
        return  # No headers at all, so no name: skipped like the empty part.
    crlf = part.find(b"\r\n\r\n")
    lf = part.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        head, payload = part[:crlf], part[crlf + 4 :]
    elif lf >= 0:
        head, payload = part[:lf], part[lf + 2 :]
    else:
        return
    headers = _parse_part_headers(head)
    _, disposition = parse_header_params(headers.get("content-disposition", ""))
    name = disposition.get("name")
    if name is None:
        return
    data = _decode_transfer(payload, headers.get("content-transfer-encoding", ""))
    content_type, type_params = parse_header_params(headers.get("content-type", "text/plain"))
    if "filename" in disposition:
        if disposition["filename"]:
            form.add_file(name, UploadedFile(disposition["filename"], content_type, data))
        return  # Django drops file parts with an empty filename.
    charset = type_params.get("charset", "utf-8")
    try:
        form.add(name, data.decode(charset, errors="replace"))
    except LookupError:
        form.add(name, data.decode("utf-8", errors="replace"))


def parse_urlencoded(body: bytes) -> FormData:
    form = FormData()
    for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        form.add(key, value)
    return form


def _json_scalar(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def parse_json(body: bytes) -> FormData:
    """Piston's Mimer: `request.data = json.loads(body)`; lists become repeated values."""
    form = FormData(is_json=True)
    if not body.strip():
        return form
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedBody("Bad Request") from exc
    if not isinstance(data, dict):
        return form
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, list):
            for item in value:
                if item is not None:
                    form.add(str(key), _json_scalar(item))
        else:
            form.add(str(key), _json_scalar(value))
    return form


def parse_body(content_type: str, body: bytes) -> FormData:
    """Parse a POST/PUT body according to its Content-Type; unknown types give no fields."""
    mime, params = parse_header_params(content_type)
    if mime == "multipart/form-data":
        return parse_multipart(body, params.get("boundary"))
    if mime == "application/x-www-form-urlencoded":
        return parse_urlencoded(body)
    if mime == "application/json":
        return parse_json(body)
    return FormData()
