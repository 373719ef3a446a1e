"""Find the Debian mirror this machine's apt already uses.

Reads /etc/apt/sources.list and sources.list.d/ (one-line ``*.list`` and deb822 ``*.sources``
files, the same files apt reads) and picks the Debian archive and security URIs. Third-party
repositories (their own suites like ``nodistro`` or components like ``stable``) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from berth.vps.errors import VpsError

# Suite names the Debian archive publishes (codenames and aliases, without -updates etc.).
DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
        "experimental",
    }
)
_ARCHIVE_POCKETS = ("", "-updates", "-backports", "-proposed-updates")


@dataclass(frozen=True)
class AptSource:
    """One repository entry: a deb822 stanza or a one-line entry, expanded to one URI."""

    types: tuple[str, ...]
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str


@dataclass(frozen=True)
class DebianMirror:
    """The Debian archive URI and, when the machine has one, the security archive URI."""

    archive: str
    security: str | None


def parse_one_line(text: str, origin: str = "<text>") -> list[AptSource]:
    """Parse the classic ``deb [options] uri suite [component...]`` format."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                continue
            rest = rest[end + 1 :]
        words = rest.split()
        if kind not in ("deb", "deb-src") or len(words) < 2:
            continue
        sources.append(
            AptSource(
                types=(kind,),
                uri=words[0],
                suites=(words[1],),
                components=tuple(words[2:]),
                origin=origin,
            )
        )
    return sources


def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    fields: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif raw[0] in " \t":
            if key:  # continuation line of a multi-line field (e.g. an inline Signed-By key)
                fields[key] += "\n" + raw.strip()
        elif ":" in raw:
            name, _, value = raw.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()


def parse_deb822(text: str, origin: str = "<text>") -> list[AptSource]:
    """Parse the deb822 ``*.sources`` format (Types/URIs/Suites/Components stanzas)."""
    sources = []
    for fields in _deb822_stanzas(text):
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        types = tuple(fields.get("types", "").split())
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        for uri in fields.get("uris", "").split():
            if types and suites:
                sources.append(AptSource(types, uri, suites, components, origin))
    return sources


def read_sources(apt_dir: Path) -> list[AptSource]:
    """Every repository apt on this machine knows, in the order apt reads them."""
    sources: list[AptSource] = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += parse_one_line(main_list.read_text(), str(main_list))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(), str(path))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(), str(path))
    return sources


def _is_archive_suite(suite: str) -> bool:
    return any(suite == f"{base}{pocket}" for base in DEBIAN_SUITES for pocket in _ARCHIVE_POCKETS)


def _is_security_suite(suite: str) -> bool:
    base = suite.removesuffix("-security").removesuffix("/updates")
    return base != suite and base in DEBIAN_SUITES


def pick_mirror(sources: Iterable[AptSource]) -> DebianMirror:
    """Choose the Debian archive and security URIs among the machine's sources."""
    archive: str | None = None
    security: str | None = None
    for source in sources:
        if "deb" not in source.types or "main" not in source.components:
            continue
        uri = source.uri.rstrip("/")
        if archive is None and any(_is_archive_suite(s) for s in source.suites):
            archive = uri
        if security is None and any(_is_security_suite(s) for s in source.suites):
            security = uri
    if archive is None:
        raise VpsError(
            "no Debian archive found in this machine's apt sources "
            "(expected a 'deb' entry for a Debian suite such as bookworm with component main)"
        )
    return DebianMirror(archive=archive, security=security)


def host_mirror(apt_dir: Path) -> DebianMirror:
    """The Debian mirror configured in apt_dir (normally /etc/apt)."""
    return pick_mirror(read_sources(apt_dir))


def guest_sources(mirror: DebianMirror, suite: str) -> str:
    """A deb822 sources file for a guest: suite, suite-updates and suite-security."""
    stanzas = [
        f"Types: deb\nURIs: {mirror.archive}\nSuites: {suite} {suite}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    ]
    if mirror.security is not None:
        stanzas.append(
            f"Types: deb\nURIs: {mirror.security}\nSuites: {suite}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    return "\n".join(stanzas)
