"""Declared dependency bounds exclude versions with published advisories (issue 8, item 11).

The table is the one docs/security.md gives: the last vulnerable version of each package. A declared range that
still admits it fails here, and so does an environment that installed it anyway.
"""

from __future__ import annotations

from importlib.metadata import requires, version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

# package -> (last version affected, advisory). Each must be excluded by the declared range.
ADVISORIES: dict[str, tuple[str, str]] = {
    "h11": ("0.15.0", "CVE-2025-43859: chunked-encoding parsing, request smuggling"),
    "cryptography": ("49.0.0", "CVE-2026-69247"),
    "starlette": ("1.0.0", "CVE-2026-48710"),
    "httpx2": ("2.11.0", "CVE-2026-84378..84382"),
}


def declared() -> dict[str, Requirement]:
    """The project's requirements (core and the `mcp` extra), by name, as the installed metadata states them."""
    found: dict[str, Requirement] = {}
    for line in requires("sigv4-proxy") or []:
        requirement = Requirement(line)
        marker = str(requirement.marker or "")
        if not marker or 'extra == "mcp"' in marker:
            found[requirement.name.lower()] = requirement
    return found


@pytest.mark.parametrize("package", sorted(ADVISORIES))
def test_declared_range_excludes_the_last_vulnerable_version(package: str) -> None:
    requirement = declared().get(package)
    assert requirement is not None, f"{package} is not declared (the listener or the mcp extra imports it)"
    last_bad, advisory = ADVISORIES[package]
    assert not requirement.specifier.contains(last_bad, prereleases=True), f"{requirement} admits {advisory}"


@pytest.mark.parametrize("package", sorted(ADVISORIES))
def test_installed_version_is_past_the_advisory(package: str) -> None:
    assert Version(version(package)) > Version(ADVISORIES[package][0])
