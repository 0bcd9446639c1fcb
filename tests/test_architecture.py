"""DESIGN.md's layering: the core never loads Qt; the file format and the
catalogues never load torch; imports point down only."""

import shutil
import subprocess
import sys

import pytest


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in result.stdout.split()}


@pytest.mark.parametrize("module", ["guidl.spec", "guidl.registry", "guidl.engine", "guidl.engine.training_process", "guidl.cli"])
def test_the_core_never_imports_qt(module):
    loaded = _loaded_after_import(module)
    assert not loaded & {"PySide6", "pyqtgraph", "shiboken6"}


@pytest.mark.parametrize("module", ["guidl.spec", "guidl.registry", "guidl.cli"])
def test_the_file_format_and_catalogues_never_import_torch(module):
    assert "torch" not in _loaded_after_import(module)


@pytest.mark.parametrize("module", ["guidl.qt.app", "guidl.qt.main_window", "guidl.formatting"])
def test_the_window_comes_up_without_torch(module):
    """The window is shown while torch loads in the background: nothing it
    needs to appear may import torch (issue: start-up in <= 1.5 s)."""
    loaded = _loaded_after_import(module)
    assert not loaded & {"torch", "torchvision"}


def test_import_contracts_hold(root):
    lint = shutil.which("lint-imports") or str(root / ".venv/bin/lint-imports")
    result = subprocess.run([lint, "--config", str(root / "pyproject.toml")], cwd=root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout
