"""`sigv4-proxy help [TOPIC]`: the documentation pages, from a clone and from an installed wheel (issue 9 item 9).

An installed package has no docs/ folder, so the wheel carries the pages (setup.py's build_py hook). The
wheel test builds the project as a user does (``python -m build``: an sdist, then the wheel from it), unpacks
the wheel away from the clone and runs `help` from there.
"""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sigv4_proxy.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md"))
FIRST_TOPICS = [
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
]


def help_command(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sigv4_proxy", "help", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def topics_in_order() -> list[str]:
    """The proxy first, then the other doors, the tools and the background pages; any other page after them."""
    stems = [page.stem for page in PAGES]
    return [topic for topic in FIRST_TOPICS if topic in stems] + sorted(set(stems) - set(FIRST_TOPICS))


def first_line(page: Path) -> str:
    return page.read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_each_topic_prints_its_page(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", page.stem]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == first_line(page)
    assert out == page.read_text(encoding="utf-8")


def test_without_a_topic_it_lists_every_page_with_its_title(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Documentation topics (sigv4-proxy help TOPIC prints one):", ""]
    listed = {line.split()[0]: line for line in lines[2:]}
    assert list(listed) == topics_in_order()
    width = max(len(page.stem) for page in PAGES)
    for page in PAGES:
        title = first_line(page).removeprefix("# ").replace("`", "")
        assert listed[page.stem] == f"  {page.stem.ljust(width)}  {title}"


def test_a_command_documented_under_another_name_has_an_alias(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "dsql-token"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "tokens.md").read_text(encoding="utf-8")


def test_an_unknown_topic_suggests_the_closest_and_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "prxy"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"ERROR: no help topic 'prxy': did you mean proxy? The topics are: {', '.join(topics_in_order())}\n"


def test_piped_output_is_the_page_itself_not_the_pager(tmp_path: Path) -> None:
    paged = tmp_path / "paged"
    done = help_command("proxy", env={**os.environ, "PAGER": f"cat > {paged}", "TERM": "xterm"})
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (ROOT / "docs" / "proxy.md").read_text(encoding="utf-8")
    assert not paged.exists()


def test_a_terminal_gets_the_page_through_its_pager(tmp_path: Path) -> None:
    paged = tmp_path / "paged"
    env = {**os.environ, "PAGER": f"cat > {paged}", "TERM": "xterm"}
    env.pop("MANPAGER", None)
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "sigv4_proxy", "help", "doctor"],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=env,
        )
        _, err = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert (process.returncode, err) == (0, b"")
    assert paged.read_text(encoding="utf-8") == (ROOT / "docs" / "doctor.md").read_text(encoding="utf-8")


# --- the installed package ------------------------------------------------------------------------------------


def test_a_wheel_built_from_the_tree_carries_the_pages(tmp_path: Path) -> None:
    """About 5 s: `python -m build` (sdist, then the wheel from the sdist), without build isolation."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", tree / "src", ignore=ignore)
    shutil.copytree(ROOT / "docs", tree / "docs", ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("sigv4_proxy/docs/")}
        assert shipped == {f"sigv4_proxy/docs/{page.name}" for page in PAGES}
        archive.extractall(tmp_path / "installed")
    # Run from the unpacked wheel, away from the clone: its pages, not the clone's docs/.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "installed")}
    where = subprocess.run(
        [sys.executable, "-c", "from sigv4_proxy.cli.help import docs_directory; print(docs_directory())"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(tmp_path / "installed" / "sigv4_proxy" / "docs")
    done = help_command("proxy", env=env, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (ROOT / "docs" / "proxy.md").read_text(encoding="utf-8")
