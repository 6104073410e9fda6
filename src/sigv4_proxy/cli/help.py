"""`sigv4-proxy help [TOPIC]`: the documentation pages, from the installed package.

An installed package has no ``docs/`` folder to point at, so the pages travel with it: the wheel carries
``docs/*.md`` as ``sigv4_proxy/docs/`` (the ``build_py`` hook in ``setup.py``). In a clone (an editable
install, or running from ``src/``) they are read from the clone's ``docs/``. One topic per page, named after
its file; a command whose page has another name has an alias (``dsql-token`` -> ``tokens``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "show a documentation page (sigv4-proxy help TOPIC), or the list of topics"
DESCRIPTION = """\
Print a page of the documentation: the same pages as the project's docs/ folder, shipped inside the
installed package. With no TOPIC, list the topics. On a terminal the page opens in your pager ($PAGER);
otherwise it is printed as it is (Markdown).
"""
EPILOG = """\
examples:
  sigv4-proxy help
  sigv4-proxy help proxy
  sigv4-proxy help doctor > doctor.md
"""

# The order of the topic list: the proxy first, then the other doors, the tools, and the background pages.
# Pages not named here follow, alphabetically.
TOPIC_ORDER = (
    "proxy",
    "http",
    "pg",
    "doctor",
    "inspect",
    "request",
    "tokens",
    "emulate",
    "dsql",
    "python",
    "loadtest",
    "demo",
    "diagnosis",
    "security",
)
# Commands documented on a page with another name.
ALIASES = {"dsql-token": "tokens", "rds-token": "tokens"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help="a topic from the list (default: list them)")


def run(args: argparse.Namespace) -> int:
    from sigv4_proxy.errors import UsageError

    pages = topic_pages()
    if not pages:
        raise UsageError(
            "the documentation pages are not installed with this copy of sigv4-proxy: read them in the "
            "project's docs/ folder"
        )
    if args.topic is None:
        sys.stdout.write(topic_list(pages))
        return 0
    name = ALIASES.get(args.topic, args.topic)
    page = pages.get(name)
    if page is None:
        raise UsageError(unknown_topic_message(args.topic, list(pages)))
    show(page.read_text(encoding="utf-8"))
    return 0


def docs_directory() -> Path | None:
    """Where the pages are: inside the installed package, else in the clone this module runs from."""
    package = Path(__file__).resolve().parent.parent
    shipped = package / "docs"
    if shipped.is_dir():
        return shipped
    # src/sigv4_proxy/cli/help.py in a clone: the clone's docs/ sits next to src/ and pyproject.toml.
    root = package.parent.parent
    if package.parent.name == "src" and (root / "pyproject.toml").is_file() and (root / "docs").is_dir():
        return root / "docs"
    return None


def topic_pages() -> dict[str, Path]:
    """Topic name -> page, in the order the list shows them."""
    directory = docs_directory()
    if directory is None:
        return {}
    found = {path.stem: path for path in directory.glob("*.md")}
    ordered = [name for name in TOPIC_ORDER if name in found]
    ordered += sorted(name for name in found if name not in TOPIC_ORDER)
    return {name: found[name] for name in ordered}


def title(page: Path) -> str:
    """The page's first heading, as plain text: its line in the topic list."""
    with page.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("# "):
                return line[2:].strip().replace("`", "")
    return ""


def topic_list(pages: dict[str, Path]) -> str:
    width = max(len(name) for name in pages)
    lines = ["Documentation topics (sigv4-proxy help TOPIC prints one):", ""]
    lines += [f"  {name.ljust(width)}  {title(page)}" for name, page in pages.items()]
    return "\n".join(lines) + "\n"


def unknown_topic_message(topic: str, topics: list[str]) -> str:
    from sigv4_proxy.cli.arguments import closest

    close = closest(topic, [*topics, *ALIASES])
    suggestion = f"did you mean {close}? " if close else ""
    return f"no help topic '{topic}': {suggestion}The topics are: {', '.join(topics)}"


def show(text: str) -> None:
    """Through the user's pager on a terminal; as it is otherwise (a pipe, a file, a test)."""
    if sys.stdout.isatty():
        import pydoc

        pydoc.pager(text)
        return
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
