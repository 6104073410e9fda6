"""Optional dependency groups ("extras"): one way to import a module an extra installs, and one message when it
is missing (the CLI, the `sigv4_proxy.dsql` helpers and the load-test report all say it the same way)."""

from __future__ import annotations

import importlib
from types import ModuleType

from sigv4_proxy.errors import MissingExtraError


def missing_extra(feature: str, extra: str, module: str) -> MissingExtraError:
    """``feature`` (a command such as ``sigv4-proxy pg`` or a name such as ``sigv4_proxy.dsql.connect``) needs
    ``[extra]``, whose ``module`` is not installed. The package is installed from a clone (it is not on a package
    index): the message gives every way of installing it from there, with the extra."""
    fix = f"pip install '.[{extra}]'"
    return MissingExtraError(
        f"{feature} needs the optional [{extra}] dependencies ({module} is not installed): in the "
        f"project's clone, reinstall with them: {fix} (or pipx install --force '.[{extra}]', "
        f"or uv tool install --force '.[{extra}]')",
        fix=fix,
    )


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :func:`missing_extra` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        # `from None`: the ImportError adds nothing the message does not say.
        raise missing_extra(feature, extra, module.split(".", 1)[0]) from None
