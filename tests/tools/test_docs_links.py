"""Every relative link in README.md and docs/*.md resolves: the file exists, and a `#fragment` names a heading
of that file as GitHub renders it (GitHub's heading slugs), so no reader lands on a missing page or section.

Links to other sites (http, https, mailto) are not followed: the tests never leave loopback.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target ends at whitespace (an optional "title" may follow) or ')'.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@dataclass(frozen=True)
class Link:
    source: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line}: ({self.target})"


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, with inline code spans blanked (links there are examples)."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opening = FENCE.match(line)
        if opening:
            marker = opening.group(1)
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            continue
        if fence is None:
            lines.append((number, INLINE_CODE.sub(lambda span: " " * len(span.group(0)), line)))
    return lines


def heading_text(markdown: str) -> str:
    """A heading's text as rendered: code spans keep their content, links their text, emphasis and tags go."""
    text = re.sub(r"(`+)(.+?)\1", lambda span: span.group(2), markdown)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"(\*{1,3}|_{1,3})(\S(?:.*?\S)?)\1", r"\2", text)


def github_slug(text: str) -> str:
    """GitHub's anchor for a heading (github-slugger): lower case; letters, marks, digits, '_', '-' and spaces
    survive, every other character is dropped; each space becomes '-' (runs are not collapsed)."""
    kept = (
        char
        for char in text.lower()
        if char in " -_" or unicodedata.category(char)[0] in "LMN" or unicodedata.category(char) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def heading_lines(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, inline code kept (headings are slugged with their code spans)."""
    text_lines = path.read_text(encoding="utf-8").splitlines()
    return [(number, text_lines[number - 1]) for number, _ in prose_lines(path)]


def anchors(path: Path) -> set[str]:
    """Every fragment a link may use for ``path``: heading slugs (duplicates get -1, -2, ...) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in heading_lines(path):
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading_text(heading.group(2)))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(match.group(1) for match in HTML_ANCHOR.finditer(line))
    return found


def relative_links(path: Path) -> list[Link]:
    links: list[Link] = []
    for number, line in prose_lines(path):
        targets = [match.group(1) for match in INLINE_LINK.finditer(line)]
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition.group(1))
        links.extend(Link(path, number, target) for target in targets if not EXTERNAL.match(target))
    return links


def broken(link: Link) -> str | None:
    """Why ``link`` does not resolve, or None."""
    file_part, _, fragment = link.target.partition("#")
    destination = (link.source.parent / unquote(file_part)).resolve() if file_part else link.source
    if not destination.exists():
        return f"{destination.relative_to(ROOT) if destination.is_relative_to(ROOT) else destination} does not exist"
    if fragment and destination.suffix == ".md" and unquote(fragment) not in anchors(destination):
        return f"no heading in {destination.relative_to(ROOT)} has the GitHub anchor #{fragment}"
    return None


# ------------------------------------------------------------------------------------------- the checker itself
@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Warm start (`--warm`)", "warm-start---warm"),
        ("Who may call: Host and Origin", "who-may-call-host-and-origin"),
        ("The MCP proxy: `sigv4-proxy`", "the-mcp-proxy-sigv4-proxy"),
        ("Verification (`verify()`, `emulate mcp`)", "verification-verify-emulate-mcp"),
        ("`sigv4-proxy demo` — see it work in a few seconds", "sigv4-proxy-demo--see-it-work-in-a-few-seconds"),
        ("stdin hygiene", "stdin-hygiene"),
        ("Interface VPC endpoints (PrivateLink)", "interface-vpc-endpoints-privatelink"),
        ("snake_case **bold** [a link](x.md)", "snake_case-bold-a-link"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading_text(heading)) == slug


def test_links_in_code_are_not_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[ok](#title) `[not](#x)`\n\n```\n[not](missing.md)\n# not a heading\n```\n\n## Title\n"
        "[second](#title-1) [gone](#not-a-heading) [site](https://example.com/#x)\n",
        encoding="utf-8",
    )
    assert [link.target for link in relative_links(page)] == ["#title", "#title-1", "#not-a-heading"]
    assert anchors(page) == {"title", "title-1"}


def test_the_sources_and_their_links_are_found() -> None:
    assert ROOT / "README.md" in SOURCES
    assert ROOT / "docs" / "proxy.md" in SOURCES
    assert "docs/proxy.md#running-all-day" in [link.target for link in relative_links(ROOT / "README.md")]


# ------------------------------------------------------------------------------------------- the documentation
@pytest.mark.parametrize("source", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(source: Path) -> None:
    failures = [f"{link}: {reason}" for link in relative_links(source) if (reason := broken(link))]
    assert failures == []
