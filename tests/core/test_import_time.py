"""Start-up stays light: `import sigv4_proxy`, the CLI and `--help` import no heavy dependency.

An MCP client launches `sigv4-proxy` for every session, so start-up time is user-visible. The 40 ms budget
itself is measured by `bench/startup.py` (timing does not belong in unit tests); this test guards the cause
of a slow start instead: a module-level import of httpx, botocore, cryptography, mcp (or what they pull in)
somewhere on the start-up path. Each check runs in a fresh interpreter and, on failure, names the
sigv4_proxy line that triggered the import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from sigv4_proxy import cli

# Top-level packages that must not load at start-up: the heavy peers and their heavy dependencies.
HEAVY = ("httpx", "httpcore", "botocore", "cryptography", "mcp", "pydantic", "starlette", "uvicorn", "anyio", "awscrt")

# Runs in the child before the code under test: records, for each heavy package, the sigv4_proxy stack
# frames that imported it (the import proceeds normally).
_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys, traceback

    HEAVY = set(json.loads(sys.argv[1]))
    culprits = {}

    class Probe:
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in HEAVY and top not in culprits:
                frames = [f for f in traceback.extract_stack() if "sigv4_proxy" in f.filename]
                culprits[top] = [f"{f.filename.split('src/')[-1]}:{f.lineno}: {f.line}" for f in frames[-3:]]
            return None

    sys.meta_path.insert(0, Probe())

    def report():
        loaded = {m.partition(".")[0] for m in sys.modules} & HEAVY
        print(json.dumps({top: culprits.get(top, ["(imported outside sigv4_proxy)"]) for top in sorted(loaded)}))
    """
)


def heavy_imports(code: str) -> dict[str, list[str]]:
    """Run `code` in a fresh interpreter; return each heavy package it loaded -> the importing lines."""
    script = _PROBE + textwrap.dedent(code) + "\nreport()\n"
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(HEAVY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _explain(found: dict[str, list[str]]) -> str:
    lines = ["start-up imported heavy packages (move the import inside the function that needs it):"]
    for top, culprits in found.items():
        lines.append(f"  {top}:")
        lines.extend(f"      {line}" for line in culprits)
    return "\n".join(lines)


def _help(argv: list[str]) -> str:
    return f"""
    from sigv4_proxy import cli
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.main({argv!r})
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
    """


@pytest.mark.parametrize(
    ("what", "code"),
    [
        pytest.param("import sigv4_proxy", "import sigv4_proxy", id="import-sigv4_proxy"),
        pytest.param("import sigv4_proxy.cli", "import sigv4_proxy.cli", id="import-cli"),
        pytest.param("sigv4-proxy --help", _help(["--help"]), id="help"),
    ],
)
def test_start_up_imports_nothing_heavy(what: str, code: str) -> None:
    found = heavy_imports(code)
    assert not found, f"{what}: " + _explain(found)


@pytest.mark.parametrize("command", cli.SUBCOMMANDS)
def test_subcommand_help_imports_nothing_heavy(command: str) -> None:
    found = heavy_imports(_help([command, "--help"]))
    assert not found, f"sigv4-proxy {command} --help: " + _explain(found)


def test_sigv4_signing_core_needs_no_heavy_package() -> None:
    """SigV4 signing, presigning and verifying (the proxy's hot path) run on the standard library alone;
    only SigV4a loads `cryptography`, lazily."""
    found = heavy_imports(
        """
        from datetime import datetime, timezone
        from sigv4_proxy import Credentials, presign, sign, verify
        credentials = Credentials("AKIDEXAMPLE", "secret")
        now = datetime(2024, 5, 6, tzinfo=timezone.utc)
        signed = sign("POST", "https://h.example/p?q=1", {"x-a": "1"}, b"{}", credentials=credentials,
                      region="us-east-1", service="execute-api", now=now)
        presign("GET", "https://h.example/p", credentials=credentials, region="us-east-1", service="s", now=now)
        result = verify("POST", "/p?q=1", signed.headers, b"{}", credentials_for={"AKIDEXAMPLE": credentials}.get,
                        now=now)
        assert result.ok, result.message
        """
    )
    assert not found, "SigV4 core: " + _explain(found)


def test_the_probe_detects_a_heavy_import() -> None:
    """The guard itself can fail: importing a heavy package is seen and attributed."""
    found = heavy_imports("import sigv4_proxy.signing.v4a\nsigv4_proxy.signing.v4a.private_key('AKID', 'secret')")
    assert "cryptography" in found
    assert any("sigv4_proxy/signing/v4a.py" in line for line in found["cryptography"])
