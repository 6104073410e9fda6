"""Build hook: the documentation pages travel inside the package, for `sigv4-proxy help TOPIC`.

``docs/*.md`` (the pages the README links to) are copied into the wheel as ``sigv4_proxy/docs/*.md``, and listed
in the sdist, so a wheel built from the sdist (``python -m build``) carries them too. An editable install reads
them from the clone instead (``sigv4_proxy.cli.help.docs_directory``). Everything else is in pyproject.toml.
"""

from __future__ import annotations

import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py

DOCS_SOURCE = "docs"  # relative to the project root, where the build runs
DOCS_PACKAGE = "sigv4_proxy.docs"

DataFiles = list[tuple[str, str, str, list[str]]]


class BuildPyWithDocs(build_py):
    """build_py whose package data includes the documentation pages (for the wheel and the sdist's list)."""

    def _get_data_files(self) -> DataFiles:
        return [*super()._get_data_files(), self._docs()]

    def get_data_files_without_manifest(self) -> DataFiles:
        # What the sdist's file list (egg_info's manifest) is built from.
        return [*super().get_data_files_without_manifest(), self._docs()]

    def _docs(self) -> tuple[str, str, str, list[str]]:
        pages = sorted(os.path.basename(path) for path in glob.glob(os.path.join(DOCS_SOURCE, "*.md")))
        return DOCS_PACKAGE, DOCS_SOURCE, os.path.join(self.build_lib, *DOCS_PACKAGE.split(".")), pages


setup(cmdclass={"build_py": BuildPyWithDocs})
