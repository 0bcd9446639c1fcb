"""Saving writes where the user's file is: through a symbolic link, not over it."""

import json
import os

from guidl import spec

PROJECT = {
    "format": "guidl-project", "version": 1, "name": "linked",
    "model": {"input_shape": [2], "layers": [{"type": "Linear", "params": {"out_features": 2}}]},
    "data": {"dataset": "moons"}, "training": {},
}


def test_saving_through_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "real.guidl.json"
    target.write_text(json.dumps(PROJECT))
    os.chmod(target, 0o640)
    link = tmp_path / "link.guidl.json"
    link.symlink_to(os.path.relpath(target, tmp_path))
    project = spec.load(link)
    project.name = "renamed"
    spec.save(project, link)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, tmp_path)
    assert spec.load(target).name == "renamed"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in shared.iterdir()) == ["real.guidl.json"]  # no temp file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.guidl.json", "shared"]


def test_saving_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.guidl.json"
    link.symlink_to(tmp_path / "new.guidl.json")
    spec.save(spec.loads(json.dumps(PROJECT)), link)
    assert link.is_symlink() and spec.load(tmp_path / "new.guidl.json").name == "linked"
