"""The ``guidl`` command.

Heavy imports (torch) happen inside the commands that need them, so
``guidl --help`` and ``guidl --version`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from . import __version__

#: Exit status for bad input (a malformed project, an impossible layer...).
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guidl",
        description="Design, train and export neural networks. The project file "
                    "(*.guidl.json) holds the model, the data and the training setup.",
    )
    parser.add_argument("--version", action="version", version=f"guidl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    summary = commands.add_parser(
        "summary", help="print the model's layers, output shapes and parameter counts",
        description="Print a table of the model's layers with their output shapes and "
                    "parameter counts. Exits 2 with one line per problem when the project "
                    "is invalid.")
    summary.add_argument("project", help="a *.guidl.json project file")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead")
    summary.set_defaults(run=_summary)
    return parser


def _summary(args: argparse.Namespace) -> int:
    from . import spec
    from .engine.build import analyze
    from .engine.summary import summary_text

    try:
        project = spec.load(args.project)
    except spec.ProjectError as error:
        return _bad_input(error.lines(), args.json)
    report = analyze(project.model)
    problems = report.problems()
    if problems:
        return _bad_input([f"{args.project}: {p}" for p in problems], args.json)
    if args.json:
        print(json.dumps({"ok": True, "name": project.name, **report.to_dict()}))
    else:
        sys.stdout.write(summary_text(report, project.name))
    return 0


def _bad_input(lines: list[str], as_json: bool) -> int:
    for line in lines:
        print(line, file=sys.stderr)
    if as_json:
        print(json.dumps({"ok": False, "problems": lines}))
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("guidl: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - last line of defence: no raw traceback
        if os.environ.get("GUIDL_DEBUG"):
            traceback.print_exc()
        print(f"guidl: internal error: {type(error).__name__}: {error}\n"
              "This is a bug in guidl; run again with GUIDL_DEBUG=1 for the details.",
              file=sys.stderr)
        return 1
