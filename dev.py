#!/usr/bin/env python3
"""One entry point for working on sigv4-proxy from a fresh machine (only Python >= 3.10 needed).

    python3 dev.py demo      # the demo, on local IAM-verifying endpoints, no AWS account
    python3 dev.py test      # the whole test suite (extra arguments go to pytest)
    python3 dev.py lint      # ruff
    python3 dev.py bench     # every benchmark in bench/
    python3 dev.py run ARGS  # sigv4-proxy ARGS inside the project's venv

Each command creates `.venv` and installs the project with its development dependencies the first time,
and again whenever pyproject.toml changes (a stamp file records which version was installed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SIGV4_PROXY_VENV", ROOT / ".venv"))
STAMP = VENV / ".sigv4-proxy-installed"


def venv_bin(name: str) -> Path:
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / folder / f"{name}{suffix}"


def wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv() -> Path:
    python = venv_bin("python")
    if not python.exists():
        print(f"dev.py: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if not STAMP.exists() or STAMP.read_text() != wanted_stamp():
        print("dev.py: installing sigv4-proxy[dev] into the venv", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(wanted_stamp())
    return python


def run(argv: list[str]) -> int:
    return subprocess.run(argv, cwd=ROOT).returncode


def main(args: list[str]) -> int:
    if not args or args[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    python = ensure_venv()
    if command == "demo":
        return run([str(venv_bin("sigv4-proxy")), "demo", *rest])
    if command == "test":
        return run([str(python), "-m", "pytest", *rest])
    if command == "lint":
        return run([str(python), "-m", "ruff", "check", "src", "tests", "bench", "dev.py", *rest])
    if command == "bench":
        scripts = sorted((ROOT / "bench").glob("*.py")) if not rest else [Path(p) for p in rest]
        return max((run([str(python), str(s)]) for s in scripts), default=0)
    if command == "run":
        return run([str(venv_bin("sigv4-proxy")), *rest])
    print(f"dev.py: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
