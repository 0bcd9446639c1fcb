"""README and CI stay true to the code."""

import re

from guidl.registry import CATALOGUES
from guidl.registry.markdown import update


def test_readme_tables_match_the_registry(root):
    text = (root / "README.md").read_text()
    assert update(text) == text, "run: python -m guidl.registry.markdown README.md"
    for family, catalogue in CATALOGUES.items():
        block = re.search(rf"<!-- registry:{family} -->(.*?)<!-- /registry:{family} -->", text, re.S)
        assert block, f"README has no {family} table"
        for entry in catalogue:
            assert f"| `{entry.name}` |" in block.group(1)


def test_ci_runs_readme_test_command(root):
    readme = (root / "README.md").read_text()
    ci = (root / ".ci/run").read_text()
    commands = re.findall(r"```sh\n(?:#.*\n)?(.+)\n```", readme)
    assert len(commands) == 2, commands
    test_command = commands[1]
    assert "pytest" in test_command
    assert test_command in ci.splitlines()


def test_readme_lists_every_example(root):
    readme = (root / "README.md").read_text()
    for path in sorted((root / "examples").glob("*.guidl.json")):
        assert f"`examples/{path.name}`" in readme
