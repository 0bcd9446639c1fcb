"""A plain (non-editable) install carries the package data and the command."""

import subprocess
import sys


def test_non_editable_install_has_resources_and_entry_point(tmp_path, root):
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(root)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    package = target / "guidl"
    for name in ("resources/guidl.svg", "resources/guidl.desktop", "spec/project.py",
                 "registry/layers.py", "engine/build.py", "__main__.py"):
        assert (package / name).is_file(), name
    assert not (target / "resources").exists(), "resources must install inside the package"
    assert (target / "bin" / "guidl").is_file()
    code = ("from guidl.resources import path; import guidl; "
            "print(path('guidl.svg').read_text()[:4], guidl.__file__)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONPATH": str(target)}, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("<svg") and str(target) in shown.stdout
