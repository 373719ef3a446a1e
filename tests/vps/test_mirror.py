"""Finding the Debian mirror in apt's configuration (both formats, third parties ignored)."""

from pathlib import Path

import pytest

from berth.vps.errors import VpsError
from berth.vps.mirror import (
    AptSource,
    DebianMirror,
    guest_sources,
    host_mirror,
    parse_deb822,
    parse_one_line,
    pick_mirror,
    read_sources,
)

FIXTURES = Path(__file__).parent / "fixtures"


def test_deb822_mirror_ignores_third_party_disabled_and_unknown_files() -> None:
    mirror = host_mirror(FIXTURES / "apt-deb822")

    assert mirror == DebianMirror(
        archive="http://mirror.example/debian", security="http://mirror.example/debian-security"
    )


def test_deb822_parses_multiline_fields_and_skips_disabled_stanzas() -> None:
    text = (FIXTURES / "apt-deb822/sources.list.d/00-vendor.sources").read_text()

    sources = parse_deb822(text)

    assert [s.uri for s in sources] == ["https://vendor.example/node_20.x"]
    assert sources[0].suites == ("nodistro",)


def test_deb822_expands_every_uri_of_a_stanza() -> None:
    text = "Types: deb deb-src\nURIs: http://a.example/debian http://b.example/debian\n"
    text += "Suites: bookworm\nComponents: main\n"

    sources = parse_deb822(text)

    assert [s.uri for s in sources] == ["http://a.example/debian", "http://b.example/debian"]
    assert sources[0].types == ("deb", "deb-src")


def test_one_line_mirror_skips_deb_src_vendor_suites_and_components() -> None:
    mirror = host_mirror(FIXTURES / "apt-oneline")

    assert mirror == DebianMirror(
        archive="http://ftp.mirror.example/debian",
        security="http://security.mirror.example/debian-security",
    )


def test_one_line_parses_options_and_trailing_comments() -> None:
    line = "deb [arch=amd64 signed-by=/k.gpg] http://x.example/debian bookworm main # note\n"

    (source,) = parse_one_line(line)

    assert source == AptSource(
        ("deb",), "http://x.example/debian", ("bookworm",), ("main",), "<text>"
    )


def test_sources_are_read_in_apt_order() -> None:
    uris = [s.uri for s in read_sources(FIXTURES / "apt-oneline")]

    assert uris[-1] == "http://later.example/debian"


def test_old_style_security_suite_is_recognised() -> None:
    sources = parse_one_line(
        "deb http://m.example/debian bullseye main\n"
        "deb http://s.example/debian-security bullseye/updates main\n"
    )

    assert pick_mirror(sources).security == "http://s.example/debian-security"


def test_missing_security_source_leaves_security_unset() -> None:
    mirror = pick_mirror(parse_one_line("deb http://m.example/debian bookworm main\n"))

    assert mirror.security is None
    assert "security" not in guest_sources(mirror, "bookworm")


def test_no_debian_source_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb https://vendor.example/apt nodistro main\n")

    with pytest.raises(VpsError, match="no Debian archive"):
        host_mirror(tmp_path)


def test_guest_sources_have_release_updates_and_security_suites() -> None:
    mirror = DebianMirror("http://m.example/debian", "http://m.example/debian-security")

    text = guest_sources(mirror, "bookworm")

    assert "URIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n" in text
    assert "URIs: http://m.example/debian-security\nSuites: bookworm-security\n" in text
    assert parse_deb822(text)[0].components == ("main",)
