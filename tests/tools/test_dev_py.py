"""dev.py on a fresh machine (issue 9 item 4): the Python version check, stale-venv detection and rebuild, the
step lines and progress of the first install, and what a failed pip run prints.

dev.py is loaded in-process (as a module, from the repository root) to drive its check and venv functions with
chosen inputs, and run as a subprocess for what a user sees: by every old interpreter found on this machine, and
once for real into a fresh venv (a real pip install, about 20 s).
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from types import ModuleType

import pytest

DEV_PY = Path(__file__).resolve().parents[2] / "dev.py"
THIS_VERSION = ".".join(str(n) for n in sys.version_info[:3])
THIS_PYTHON = f"Python {THIS_VERSION} ({sys.executable})"
# The interpreter behind this one (outside any venv), to put on a test PATH under another name.
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
VERSION_PROBE = "import sys; sys.stdout.write('.'.join(str(n) for n in sys.version_info[:3]))"


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_py_under_test", DEV_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def old_interpreters() -> list[str]:
    """Pythons older than 3.10 on this machine, found by name (pyenv versions, /usr/bin/python2.7, ...)."""
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    patterns = [f"{pyenv_root}/versions/2.*/bin/python", f"{pyenv_root}/versions/3.[0-9].*/bin/python"]
    patterns += [f"{folder}/python{v}" for folder in ("/usr/bin", "/usr/local/bin") for v in ("2.[0-9]", "3.[0-9]")]
    return sorted({path for pattern in patterns for path in glob.glob(pattern)})


def version_of(python: str) -> str:
    return subprocess.run([python, "-c", VERSION_PROBE], capture_output=True, text=True, check=True).stdout


def make_venv(folder: Path) -> Path:
    """A venv of the running Python without pip (fast): the state dev.py leaves, minus the packages."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    return folder


def set_cfg(folder: Path, **values: str) -> None:
    cfg = folder / "pyvenv.cfg"
    lines = [line for line in cfg.read_text().splitlines() if line.split("=")[0].strip() not in values]
    cfg.write_text("\n".join([*lines, *(f"{key} = {value}" for key, value in values.items())]) + "\n")


def path_with(folder: Path, programs: dict[str, str]) -> str:
    """A PATH of one folder holding `programs`: name -> a real interpreter to link, or a shell script's body."""
    folder.mkdir()
    for name, target in programs.items():
        program = folder / name
        if target.startswith("#!"):
            program.write_text(target)
            program.chmod(0o755)
        else:
            program.symlink_to(target)
    return str(folder)


# -- the version check -------------------------------------------------------------------------------------------


def test_the_needed_version_is_pyprojects_requires_python(dev: ModuleType) -> None:
    assert importlib.metadata.metadata("sigv4-proxy")["Requires-Python"] == ">=3.10"
    assert dev.needed_python() == (3, 10)


@pytest.mark.parametrize("found", [(3, 10, 0), (3, 13, 1), tuple(sys.version_info)])
def test_a_new_enough_python_passes(dev: ModuleType, found: tuple[int, ...]) -> None:
    assert dev.version_problem(found, "/usr/bin/python3", ["dev.py", "test"]) is None


@pytest.mark.parametrize("found", [(3, 9, 18), (3, 8, 10), (2, 7, 18)])
def test_an_old_python_gets_the_needed_version_and_how_to_get_one(
    dev: ModuleType, found: tuple[int, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin", {}))
    found_text = ".".join(str(n) for n in found)
    assert dev.version_problem(found, "/usr/bin/python3", ["dev.py", "test", "-k", "a b"]) == (
        f"dev.py: needs Python >= 3.10, found {found_text} (/usr/bin/python3); run it with a newer one, e.g. "
        "python3.12 dev.py test -k 'a b', or set up one with pyenv/uv (uv python install 3.12)"
    )


def test_a_new_enough_python_on_path_is_named_in_the_command_to_type(
    dev: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newest_name = f"python3.{sys.version_info.minor}"
    # python3.30 stands for a pyenv shim of a version that is not active: it exists on PATH but does not run.
    shim = "#!/bin/sh\necho 'pyenv: python3.30: command not found' >&2\nexit 127\n"
    programs = {newest_name: BASE_PYTHON, "python3.30": shim}
    old = old_interpreters()
    if old:
        programs["python3"] = old[-1]  # an old default python3: the newer python3.N is the one to type
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin", programs))
    assert dev.version_problem((3, 8, 10), "/usr/bin/python3.8", ["dev.py", "test"]) == (
        f"dev.py: needs Python >= 3.10, found 3.8.10 (/usr/bin/python3.8); run it with a newer one: {newest_name} "
        "dev.py test"
    )


def test_python3_is_preferred_when_it_is_new_enough(
    dev: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin", {"python3": BASE_PYTHON, "python3.29": BASE_PYTHON}))
    assert dev.version_problem((2, 7, 18), "/usr/bin/python", ["dev.py", "demo"]) == (
        "dev.py: needs Python >= 3.10, found 2.7.18 (/usr/bin/python); run it with a newer one: python3 dev.py demo"
    )


@pytest.mark.parametrize("python", old_interpreters())
def test_an_old_interpreter_running_dev_py_prints_the_line_not_a_syntax_error(python: str, tmp_path: Path) -> None:
    found = version_of(python)
    target = tmp_path / "venv"
    result = subprocess.run(
        [python, str(DEV_PY), "test"],
        env={"PATH": path_with(tmp_path / "bin", {}), "SIGV4_PROXY_VENV": str(target)},
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"dev.py: needs Python >= 3.10, found {found} ({python}); run it with a newer one, e.g. python3.12 "
        f"{DEV_PY} test, or set up one with pyenv/uv (uv python install 3.12)\n"
    )
    assert not target.exists()


def test_an_unknown_command_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "venv"
    result = subprocess.run(
        [sys.executable, str(DEV_PY), "tets"],
        env={**os.environ, "SIGV4_PROXY_VENV": str(target)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("dev.py: unknown command 'tets'\n")
    assert not target.exists()


# -- a venv made by another or a broken interpreter ----------------------------------------------------------------


def test_a_venv_of_the_running_python_is_kept(dev: ModuleType, tmp_path: Path) -> None:
    assert dev.venv_problem(str(make_venv(tmp_path / "venv"))) is None


def test_a_venv_made_by_another_python_is_detected(dev: ModuleType, tmp_path: Path) -> None:
    folder = make_venv(tmp_path / "venv")
    set_cfg(folder, home="/opt/python3.9/bin", version="3.9.7")
    assert dev.venv_problem(str(folder)) == (
        f"{folder} was made by Python 3.9.7 (/opt/python3.9/bin), not by this {THIS_PYTHON}"
    )


def test_a_venv_made_by_a_real_older_python_is_detected(dev: ModuleType, tmp_path: Path) -> None:
    old = old_interpreters()
    old3 = [python for python in old if version_of(python).startswith("3.")]
    if not old3:
        pytest.skip("no Python 3 older than 3.10 on this machine")
    folder = tmp_path / "venv"
    subprocess.run([old3[-1], "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
    assert dev.venv_problem(str(folder)) == (
        f"{folder} was made by Python {version_of(old3[-1])} ({os.path.dirname(old3[-1])}), not by this {THIS_PYTHON}"
    )


def test_a_venv_whose_python_was_removed_is_detected(dev: ModuleType, tmp_path: Path) -> None:
    folder = make_venv(tmp_path / "venv")
    python = folder / "bin" / "python"
    python.unlink()
    gone = tmp_path / "uninstalled" / "python3.11"
    python.symlink_to(gone)  # what an uninstalled or upgraded Python leaves behind
    assert dev.venv_problem(str(folder)) == (
        f"{folder}'s python no longer runs: it links to {os.path.realpath(gone)}, which is gone"
    )


def test_a_venv_whose_python_fails_to_start_is_detected(dev: ModuleType, tmp_path: Path) -> None:
    folder = make_venv(tmp_path / "venv")
    python = folder / "bin" / "python"
    python.unlink()
    python.write_bytes(b"")  # a half-copied interpreter: the kernel refuses to execute it
    python.chmod(0o755)
    assert dev.venv_problem(str(folder)) == f"{folder}'s python no longer runs ({python} fails to start)"


def test_a_venv_with_a_python_older_than_needed_is_detected(dev: ModuleType, tmp_path: Path) -> None:
    old3 = [python for python in old_interpreters() if version_of(python).startswith("3.")]
    if not old3:
        pytest.skip("no Python 3 older than 3.10 on this machine")
    folder = make_venv(tmp_path / "venv")
    python = folder / "bin" / "python"
    python.unlink()
    python.symlink_to(old3[-1])
    assert dev.venv_problem(str(folder)) == f"{folder}'s Python {version_of(old3[-1])} is older than the needed 3.10"


def test_a_venv_without_its_python_is_detected(dev: ModuleType, tmp_path: Path) -> None:
    folder = make_venv(tmp_path / "venv")
    (folder / "bin" / "python").unlink()
    assert dev.venv_problem(str(folder)) == f"{folder} has no bin/python (its creation was interrupted)"


def test_a_folder_that_is_not_a_venv_is_never_removed(dev: ModuleType, tmp_path: Path) -> None:
    folder = tmp_path / "my-work"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(dev.DevError) as raised:
        dev.ensure_venv(str(folder))
    assert str(raised.value) == (
        f"dev.py: {folder} exists but is not a venv (no pyvenv.cfg); remove it or set SIGV4_PROXY_VENV to another "
        "folder"
    )
    assert (folder / "notes.txt").read_text() == "mine"


class RecordedInstall:
    """Stands in for the ~20 s pip install in the rebuild tests: records each call, installs nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(self, python: str, venv_dir: str, first_time: bool) -> None:
        self.calls.append((python, venv_dir, first_time))


def test_a_venv_made_by_another_python_is_rebuilt_and_reinstalled(
    dev: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_venv(tmp_path / "venv")
    set_cfg(folder, home="/opt/python3.9/bin", version="3.9.7")
    (folder / ".sigv4-proxy-installed").write_text(dev.wanted_stamp())  # installed, but by the other Python
    install = RecordedInstall()
    monkeypatch.setattr(dev, "install_project", install)

    python = dev.ensure_venv(str(folder))

    assert capsys.readouterr().err == (
        f"dev.py: {folder} was made by Python 3.9.7 (/opt/python3.9/bin), not by this {THIS_PYTHON}; rebuilding it "
        f"with {THIS_PYTHON}\n"
    )
    assert python == str(folder / "bin" / "python")
    assert install.calls == [(python, str(folder), True)]
    assert dev.venv_problem(str(folder)) is None
    assert version_of(python) == THIS_VERSION
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize(
    ("stamp", "install_calls"),
    [(None, [True]), ("an older pyproject.toml", [False]), ("wanted", [])],
    ids=["interrupted-install", "pyproject-changed", "up-to-date"],
)
def test_the_stamp_decides_whether_to_install(
    dev: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stamp: str | None, install_calls: list[bool]
) -> None:
    folder = make_venv(tmp_path / "venv")
    if stamp is not None:
        (folder / ".sigv4-proxy-installed").write_text(dev.wanted_stamp() if stamp == "wanted" else stamp)
    install = RecordedInstall()
    monkeypatch.setattr(dev, "install_project", install)
    dev.ensure_venv(str(folder))
    assert [first_time for _, _, first_time in install.calls] == install_calls


# -- progress and failures of pip ----------------------------------------------------------------------------------


def test_a_failed_pip_run_shows_its_output_and_how_to_retry(
    dev: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing to install from (no index, an empty wheel folder): pip fails at once, changing nothing.
    no_wheels = tmp_path / "no-wheels"
    no_wheels.mkdir()
    args = ["--no-index", "--find-links", str(no_wheels), "sigv4-proxy-no-such-package"]
    with pytest.raises(dev.DevError) as raised:
        dev.run_pip(sys.executable, str(tmp_path / "venv"), args, "installing sigv4-proxy-no-such-package")
    assert str(raised.value) == (
        "dev.py: pip failed (exit 1) while installing sigv4-proxy-no-such-package; its output is above. Fix the cause "
        f"and run the same dev.py command again (it retries the install; to start over, remove {tmp_path / 'venv'})"
    )
    err = capsys.readouterr().err
    assert "ERROR: No matching distribution found for sigv4-proxy-no-such-package" in err


def test_without_a_terminal_a_long_install_prints_a_still_installing_line(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev, "HEARTBEAT_SECONDS", 0.0)  # every update is due: the line, not the timing, is tested
    progress = dev.Progress("installing sigv4-proxy[dev]", live=False)
    for line in ["Looking in indexes: https://pypi.org/simple", "Collecting botocore>=1.34", "WARNING: skipped"]:
        progress.saw(line + "\n")
    progress.update()
    progress.close()
    assert capsys.readouterr().err == (
        "dev.py: still installing sigv4-proxy[dev]: 0 s, 1 packages collected; Collecting botocore>=1.34\n"
    )


def test_on_a_terminal_the_install_is_one_live_line_cleared_at_the_end(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the terminal's width, which the line is cut to
    progress = dev.Progress("installing sigv4-proxy[dev]", live=True)
    progress.saw("Collecting httpx<1,>=0.27\n")
    progress.close()
    assert capsys.readouterr().err == (
        "\r\x1b[Kdev.py: installing sigv4-proxy[dev]: 0 s, 1 packages collected; Collecting httpx<1,>=0.27\r\x1b[K"
    )


# -- the real thing --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_fresh_venv_end_to_end(tmp_path: Path) -> None:
    """What a new user sees: step lines on the first run (a real install), nothing on the second."""
    target = tmp_path / "venv"
    env = {**os.environ, "SIGV4_PROXY_VENV": str(target)}
    command = [sys.executable, str(DEV_PY), "run", "--help"]

    def dev_py() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=280)

    first = dev_py()
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("usage: sigv4-proxy")
    steps = [line for line in first.stderr.splitlines() if not line.startswith("dev.py: still installing")]
    assert steps[:3] == [
        f"dev.py: creating {target} with {THIS_PYTHON}",
        "dev.py: upgrading pip",
        "dev.py: installing sigv4-proxy[dev] (first time takes about 20 s)",
    ]
    assert len(steps) == 4
    assert re.fullmatch(r"dev\.py: installed sigv4-proxy\[dev\] \(\d+ packages\) in \d+ s", steps[3])
    wanted = hashlib.sha256((DEV_PY.parent / "pyproject.toml").read_bytes()).hexdigest()
    assert (target / ".sigv4-proxy-installed").read_text() == wanted

    second = dev_py()
    assert (second.returncode, second.stderr, second.stdout) == (0, "", first.stdout)
    shutil.rmtree(target)  # ~250 MB; kept when an assertion above fails, to look into


@pytest.mark.parametrize(
    ("rest", "argv_tail"),
    [
        ([], ["-m", "pytest", "-m", ""]),  # the whole suite: the `slow` soak that a bare pytest leaves out, too
        (["-m", "slow"], ["-m", "pytest", "-m", "slow"]),
        (["tests/core"], ["-m", "pytest", "tests/core"]),
    ],
)
def test_the_test_command_runs_the_whole_suite_unless_narrowed(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch, rest: list[str], argv_tail: list[str]
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(dev, "run", lambda argv: seen.append(argv) or 0)
    clients_for: list[str] = []
    monkeypatch.setattr(dev, "ensure_test_clients", clients_for.append)
    assert dev.run_command("test", rest, "python") == 0
    assert seen == [["python", *argv_tail]]
    assert clients_for == [dev.VENV]  # the test clients from outside PyPI, before the tests that use them


def test_lint_runs_ruff_check_ruff_format_check_and_mypy_and_returns_the_worst(
    dev: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(dev, "run", lambda argv: seen.append(argv) or (1 if "format" in argv else 0))
    monkeypatch.setattr(dev, "ensure_test_clients", lambda venv_dir: pytest.fail("lint installs no test client"))
    assert dev.run_command("lint", [], "python") == 1
    assert [argv[2:4] for argv in seen] == [["ruff", "check"], ["ruff", "format"], ["mypy"]]


# -- the test clients from outside PyPI (pgJDBC, psql with SSL, Chromium) ------------------------------------------


def test_the_test_clients_are_the_debian_packages_the_tests_look_for(dev: ModuleType) -> None:
    assert dev.TEST_CLIENTS == (
        ("libpostgresql-jdbc-java", "file", "/usr/share/java/postgresql.jar", "pgJDBC"),
        ("postgresql-client", "program", "psql", "psql with SSL"),
        ("chromium", "program", "chromium", "Chromium"),
    )


def test_a_test_client_is_missing_when_its_file_or_program_is_absent(
    dev: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jar = tmp_path / "here.jar"
    jar.write_bytes(b"PK")
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin", {"here-program": "#!/bin/sh\nexit 0\n"}))
    monkeypatch.setattr(
        dev,
        "TEST_CLIENTS",
        (
            ("jar-here", "file", str(jar), "a jar"),
            ("jar-gone", "file", str(tmp_path / "gone.jar"), "another jar"),
            ("program-here", "program", "here-program", "a program"),
            ("program-gone", "program", "gone-program", "another program"),
        ),
    )
    assert dev.missing_test_clients() == [("jar-gone", "another jar"), ("program-gone", "another program")]


# A stand-in apt-get: logs each call (with DEBIAN_FRONTEND); `install` fails until `update` has run once, as on a
# fresh container without package lists, or always when the `broken` file exists.
FAKE_APT_GET = """#!/bin/sh
here=$(dirname "$0")
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> "$here/calls"
case "$1" in
  update) touch "$here/lists"; exit 0 ;;
  install) if [ -e "$here/lists" ] && [ ! -e "$here/broken" ]; then exit 0; else exit 100; fi ;;
esac
exit 1
"""
INSTALL = "DEBIAN_FRONTEND=noninteractive install -y -q --no-install-recommends chromium postgresql-client"
UPDATE = "DEBIAN_FRONTEND=noninteractive update -q"
INSTALLING = (
    "dev.py: installing chromium postgresql-client for the tests' clients from outside PyPI (Chromium, psql with SSL)\n"
)


@pytest.fixture
def fake_apt_get(dev: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A root shell with the stand-in apt-get, and two test clients missing; the folder holding the script."""
    folder = Path(path_with(tmp_path / "apt", {"apt-get": FAKE_APT_GET}))
    monkeypatch.setattr(dev, "apt_get_as_root", lambda: str(folder / "apt-get"))
    monkeypatch.setattr(
        dev, "missing_test_clients", lambda: [("chromium", "Chromium"), ("postgresql-client", "psql with SSL")]
    )
    return folder


def apt_calls(folder: Path) -> list[str]:
    calls = folder / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_missing_test_clients_are_installed_once_per_venv_refreshing_the_lists_when_needed(
    dev: ModuleType, fake_apt_get: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    venv_dir = make_venv(tmp_path / "venv")
    dev.ensure_test_clients(str(venv_dir))
    assert apt_calls(fake_apt_get) == [INSTALL, UPDATE, INSTALL]
    assert capsys.readouterr().err == INSTALLING
    assert (venv_dir / ".test-clients-install-tried").read_text() == "installed\n"

    dev.ensure_test_clients(str(venv_dir))  # tried once for this venv: nothing more
    assert apt_calls(fake_apt_get) == [INSTALL, UPDATE, INSTALL]
    assert capsys.readouterr().err == ""


def test_a_failed_install_says_so_and_is_not_retried_in_that_venv(
    dev: ModuleType, fake_apt_get: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_apt_get / "broken").touch()
    venv_dir = make_venv(tmp_path / "venv")
    dev.ensure_test_clients(str(venv_dir))
    dev.ensure_test_clients(str(venv_dir))
    assert apt_calls(fake_apt_get) == [INSTALL, UPDATE, INSTALL]
    assert capsys.readouterr().err == INSTALLING + (
        "dev.py: could not install chromium postgresql-client; the tests that need them will be skipped\n"
    )
    assert (venv_dir / ".test-clients-install-tried").read_text() == "failed\n"


@pytest.mark.parametrize("case", ["not-root", "nothing-missing"])
def test_nothing_is_installed_without_root_and_apt_get_or_when_nothing_is_missing(
    dev: ModuleType,
    fake_apt_get: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    if case == "not-root":
        monkeypatch.setattr(dev, "apt_get_as_root", lambda: None)
    else:
        monkeypatch.setattr(dev, "missing_test_clients", list)
    venv_dir = make_venv(tmp_path / "venv")
    dev.ensure_test_clients(str(venv_dir))
    assert (apt_calls(fake_apt_get), capsys.readouterr().err) == ([], "")
    assert not (venv_dir / ".test-clients-install-tried").exists()  # a later root run with apt-get still tries
