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
import warnings

from . import __version__

#: Exit status for bad input (a malformed project, an impossible layer...).
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guidl",
        usage="guidl [PROJECT] | guidl COMMAND ...",
        description="Design, train and export neural networks. `guidl` opens the window "
                    "(with PROJECT, or with the MNIST CNN example); the commands below work "
                    "without a display. The project file (*.guidl.json) holds the model, the "
                    "data and the training setup.",
    )
    parser.add_argument("--version", action="version", version=f"guidl {__version__}")
    # prog: each command's usage and errors read "guidl sweep: error: ...", not the
    # top-level usage line (argparse builds a subcommand's prog from it).
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", prog="guidl")
    summary = commands.add_parser(
        "summary", help="print the model's layers, output shapes and parameter counts",
        description="Print a table of the model's layers with their output shapes and "
                    "parameter counts (a GAN: the generator's and the discriminator's). Exits 2 "
                    "with one line per problem when the project is invalid.")
    summary.add_argument("project", help="a *.guidl.json project file")
    summary.add_argument("--json", action="store_true", help="print one JSON object instead")
    summary.set_defaults(run=_summary)

    train = commands.add_parser(
        "train", help="train a project's model and write a run folder",
        description="Train the project's model on its dataset. Writes a run folder with the "
                    "project copy, metrics.csv, the last checkpoint, the final weights "
                    "(model.safetensors) and run.json. Ctrl+C stops after the current batch "
                    "and keeps the checkpoint.")
    train.add_argument("project", nargs="?", help="a *.guidl.json project file (not with --resume)")
    train.add_argument("--epochs", type=_positive, help="train this many epochs in all")
    train.add_argument("--batch-size", type=_positive, help="samples per batch")
    train.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    train.add_argument("--out", metavar="RUN_DIR", help="the run folder (default: runs/NAME-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its last checkpoint")
    train.add_argument("--json", action="store_true",
                       help="print the final metrics as one JSON object on the last line of stdout")
    train.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard event files to RUN_DIR/tensorboard")
    train.add_argument("--weights", metavar="FILE",
                       help="a pretrained backbone's weights downloaded elsewhere (.pth/.pt or "
                            ".safetensors, never unpickled): torchvision's own file goes into its "
                            "cache; any other state dict starts the project's one backbone")
    train.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                       help="started by torchrun: how the processes exchange gradients (auto: nccl "
                            "on CUDA GPUs, gloo on the CPU)")
    train.set_defaults(run=_train)

    export = commands.add_parser(
        "export", help="write a trained model as ONNX, torch.export, TorchScript, weights, "
                       "Python source or a guidl bundle",
        description="Export a trained model (a run folder or a .guidl bundle; a project file "
                    "exports its untrained model, with a warning). The file is loaded back and "
                    "its outputs compared with the model's on a real batch.")
    export.add_argument("source", metavar="RUN_DIR_OR_BUNDLE")
    export.add_argument("--format", "-f", required=True, choices=list(_FORMATS),
                        help="onnx (.onnx), pt2 (torch.export), torchscript (.pt), safetensors, "
                             "state_dict (.pth), python (.py), bundle (.guidl)")
    export.add_argument("-o", "--output", metavar="PATH", help="the file to write (default: in the "
                        "current folder, named after the project)")
    export.add_argument("--part", choices=_PARTS, default="model",
                        help="the network to export: model (a GAN's generator: noise in, images "
                             "out), encoder or decoder (an autoencoder cut at its code layer), "
                             "discriminator (a GAN's)")
    export.add_argument("--training-script", action="store_true",
                        help="with --format python: also write a standalone training script")
    export.add_argument("--json", action="store_true", help="print the result as one JSON object")
    export.set_defaults(run=_export)

    predict = commands.add_parser(
        "predict", help="classify image files or CSV rows with a trained model (an autoencoder: "
                        "reconstruct them)",
        description="Apply the model's stored preprocessing to image files or CSV rows and print "
                    "the top classes with their probabilities. An autoencoder (task "
                    "reconstruction) reconstructs each input instead and prints its error (mean "
                    "squared, in the range it was trained in); with --out-dir it writes each "
                    "input beside its reconstruction as a PNG. A file that cannot be read is "
                    "reported on stderr and the others are still predicted; the exit status is "
                    "then 2.")
    predict.add_argument("model", metavar="MODEL", help="a .guidl bundle or a run folder")
    predict.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or CSV files")
    predict.add_argument("--top-k", "-k", type=_positive, default=3, help="classes per input (3)")
    predict.add_argument("--out-dir", metavar="DIR",
                         help="an autoencoder: write INPUT_reconstruction.png files here")
    predict.add_argument("--json", action="store_true", help="print one JSON object")
    predict.set_defaults(run=_predict)

    generate = commands.add_parser(
        "generate", help="write samples of a GAN or an autoencoder's decoder, or text of a text model",
        description="A GAN's run: N samples of its generator as one PNG grid. An autoencoder's run "
                    "with a code layer: its decoder applied to N codes drawn like the training "
                    "codes (their mean and deviation). A text model's run (task text_generation, "
                    "or the text dataset): the text it writes after --prompt. Data that are not "
                    "images are written as CSV rows.")
    generate.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of guidl train")
    generate.add_argument("-n", type=_positive, default=64, help="samples to make (64)")
    generate.add_argument("-o", "--output", metavar="PATH",
                          help="the file to write (default: samples.png; a text model prints its "
                               "text, and writes it here when given)")
    generate.add_argument("--seed", type=int, default=0, help="the same seed makes the same samples (0)")
    generate.add_argument("--label", metavar="CLASS",
                          help="a conditional GAN: make this class (its name or index) only")
    generate.add_argument("--prompt", help="a text model: the text to continue (default: the task's)")
    generate.add_argument("--length", type=_positive, help="a text model: characters to write")
    generate.add_argument("--temperature", type=_temperature,
                          help="a text model: below 1 safer, above 1 more surprising")
    generate.add_argument("--json", action="store_true", help="print one JSON object")
    generate.set_defaults(run=_generate)

    runs = commands.add_parser(
        "runs", help="list the runs of a project or a runs folder",
        description="List the run folders of a runs folder (default: ./runs), oldest first: name, "
                    "status (and why a run stopped or failed), start, duration, epochs, the best "
                    "and final main validation figure, device and tags. Given a project file, its "
                    "runs (the runs folder beside it) and, for each, the settings that differ from "
                    "the project (the project's value -> the run's).")
    runs.add_argument("target", nargs="?", metavar="PROJECT_OR_RUNS_DIR",
                      help="a *.guidl.json project file, a runs folder or a run folder")
    runs.add_argument("--json", action="store_true", help="print one JSON object instead")
    runs.set_defaults(run=_runs)

    sweep = commands.add_parser(
        "sweep", help="train a project many times with settings varied (Optuna: grid, random or "
                      "TPE search, median pruning, studies shared between processes and machines)",
        description="Vary settings of the project, named by their JSON path, and train a trial for "
                    "each choice (a normal run folder in --runs-dir, listed by guidl runs). Prints a "
                    "line per finished trial, then the best trial and each setting's importance. The "
                    "sweep is an Optuna study kept in --storage (default: RUNS_DIR/sweeps/STUDY.journal): "
                    "more guidl sweep processes, on this machine or others sharing the storage, join "
                    "it with --study NAME --storage URL and no --param, and share its trial budget. "
                    "Ctrl+C stops the running trials after their batch.")
    sweep.add_argument("project", nargs="?",
                       help="a *.guidl.json project file (leave it out to join a study with --study)")
    sweep.add_argument("--param", "-p", action="append", default=[], metavar="PATH=SPEC",
                       help="a setting to vary, by its JSON path: PATH=a,b,c (these values), "
                            "PATH=lo..hi (a range), PATH=log:lo..hi (a log range), e.g. "
                            "training.optimizer.params.lr=log:1e-4..1e-1; repeat for more")
    sweep.add_argument("--strategy", choices=("grid", "random", "tpe"),
                       help="how trials are chosen (default: grid when every --param lists values, "
                            "else tpe, Optuna's Bayesian sampler)")
    sweep.add_argument("--trials", type=_positive,
                       help="the study's trial budget over all processes (default: every grid point; 20)")
    sweep.add_argument("--jobs", "-j", type=_positive, default=1,
                       help="trials at once on this machine, each in its own process with its share of "
                            "the cores (1)")
    sweep.add_argument("--metric", help="the per-epoch figure to optimise (default: val_accuracy for "
                                        "classification, val_mae for regression, else val_loss)")
    sweep.add_argument("--direction", choices=("minimize", "maximize"),
                       help="whether lower or higher is better (default: the metric's own)")
    sweep.add_argument("--no-pruner", action="store_true",
                       help="train every trial to the end (default: once five trials have finished, "
                            "Optuna's median pruner stops a trial worse than their median at the same "
                            "epoch, from its second epoch on)")
    sweep.add_argument("--epochs", type=_positive,
                       help="train every trial this many epochs (not with a swept training.epochs)")
    sweep.add_argument("--storage", metavar="URL",
                       help="where the study lives: a journal file (PATH.journal; on a shared file "
                            "system for several machines) or a database URL (sqlite:///sweep.db, "
                            "postgresql://USER@HOST/DB, mysql+pymysql://USER@HOST/DB)")
    sweep.add_argument("--study", metavar="NAME", help="the study's name (default: sweep-DATE-TIME)")
    sweep.add_argument("--runs-dir", metavar="DIR", default="runs",
                       help="where the trials' run folders go (default: ./runs)")
    sweep.add_argument("--compare", choices=("optimizers", "activations"),
                       help="a fair race instead of --param: the model trained with each of SGD, SGD "
                            "with momentum, Adagrad, RMSprop and Adam, or with Sigmoid, Tanh and ReLU, "
                            "from the same initial weights, data order and split")
    sweep.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard event files and HParams to RUN_DIR/tensorboard")
    sweep.add_argument("--json", action="store_true",
                       help="print the sweep as one JSON object on the last line of stdout")
    sweep.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by --jobs
    sweep.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    sweep.set_defaults(run=_sweep)
    parser.commands = commands  # type: ignore[attr-defined]  # main() names the command in errors
    return parser


_FORMATS = ("onnx", "pt2", "torchscript", "safetensors", "state_dict", "python", "bundle")
#: As ``engine.export.PARTS`` (listed here so --help needs no torch).
_PARTS = ("model", "encoder", "decoder", "discriminator")


def _runs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import spec

    target = Path(args.target) if args.target is not None else None
    current = None
    if target is not None and not os.path.lexists(target):
        return _bad_input([f"guidl runs: {args.target}: no such project file or folder"], args.json)
    if target is not None and not target.is_dir():
        try:
            current = spec.load(target).to_dict()  # a project: its runs, and how each differs
        except spec.ProjectError as error:
            return _bad_input(error.lines(), args.json)
    from .engine.run_index import list_summaries, run_project, runs_folder_of, settings_diff
    from .spec.paths import MISSING, format_change

    root = runs_folder_of(target)
    if target is None and not root.is_dir():
        return _bad_input([f"guidl runs: no runs folder here ({root}); give a project file or a "
                           "runs folder"], args.json)
    skipped: list = []
    summaries = list_summaries(root, skipped)
    rows = []
    for summary in summaries:
        row = summary.to_dict()
        if current is not None:
            trained = run_project(summary.path)
            changes = settings_diff(trained, current) if trained is not None else None
            row["differences"] = None if changes is None else [
                {"path": c.path, "project": None if c.before is MISSING else c.before,
                 "run": None if c.after is MISSING else c.after, "text": format_change(c)}
                for c in changes]
        rows.append(row)
    if args.json:
        print(json.dumps({"root": str(root), "project": args.target if current is not None else None,
                          "runs": rows, "skipped": [str(p) for p in skipped]}, default=str))
        return 0
    if skipped:
        print(f"{len(skipped)} folder{'s' if len(skipped) > 1 else ''} skipped (run.json unreadable)",
              file=sys.stderr)
    if not rows:
        print(f"no runs in {root}")
        elsewhere = _runs_here_of(target, current, root) if current is not None else 0
        if elsewhere:
            # guidl train and guidl sweep write to ./runs unless told: the project's runs may be there.
            print(f"./runs holds {elsewhere} run{'s' if elsewhere > 1 else ''} of this project "
                  f"(guidl train and guidl sweep write there by default): guidl runs ./runs")
        return 0
    print(_runs_table(summaries, rows, current is not None))
    return 0


def _runs_here_of(target, current: dict, root) -> int:
    """How many runs in ./runs (when that is not ``root``) were trained from
    the project file ``target`` or carry the project's name."""
    from pathlib import Path

    from .engine.runs import list_runs

    here = Path.cwd() / "runs"
    try:
        if not here.is_dir() or here.resolve() == Path(root).resolve():
            return 0
    except OSError:
        return 0
    source, name = str(Path(target).absolute()), current.get("name")
    return sum(1 for _, record in list_runs(here)
               if record.get("source") == source or (name and record.get("project") == name))


def _runs_table(summaries, rows: list[dict], with_differences: bool) -> str:
    """``guidl runs``'s table: one line a run, columns as wide as their widest cell."""
    from .formatting import ellipsize as shorten
    from .formatting import format_duration, printable

    metrics = {s.metric for s in summaries}
    one_metric = len(metrics) == 1

    def figure(metric: str, value) -> str:
        if value is None:
            return "-"
        text = f"{value:.2%}" if metric.endswith(("accuracy", "coverage", "confidence")) else f"{value:.4g}"
        return text if one_metric else f"{metric} {text}"

    def differences(row: dict) -> str:
        changes = row.get("differences")
        if changes is None:
            return "(no readable project copy)"
        if not changes:
            return "(same settings)"
        text = "; ".join(c["text"] for c in changes[:3])
        return text + (f"; +{len(changes) - 3} more" if len(changes) > 3 else "")

    metric = next(iter(metrics)) if one_metric else "metric"
    header = ["name", "status", "started", "duration", "epochs", f"best {metric}", f"final {metric}",
              "device", "tags"] + (["differences from the project"] if with_differences else [])
    lines = [header]
    for summary, row in zip(summaries, rows):
        status = summary.status if not summary.cause else f"{summary.status}: {shorten(summary.cause, 40)}"
        started = summary.started.astimezone().strftime("%Y-%m-%d %H:%M") if summary.started else "-"
        duration = format_duration(summary.duration_s) if summary.duration_s is not None else "-"
        device = shorten(summary.device, 24) if summary.device else "-"
        cells = [shorten(summary.name, 40), status, started, duration,
                 f"{summary.epochs_completed}/{summary.epochs}",
                 figure(summary.metric, summary.best), figure(summary.metric, summary.final), device,
                 ", ".join(summary.tags) or "-"]
        lines.append(cells + ([differences(row)] if with_differences else []))
    lines = [[printable(cell) for cell in line] for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in lines)


def _sweep(args: argparse.Namespace) -> int:
    from .sweep_cli import run

    return run(args)


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import spec
    from .engine.export import ExportError, default_filename, export, load_trained

    try:
        model = load_trained(args.source, part=args.part)
        path = Path(args.output) if args.output else Path(default_filename(model, args.format))
        result = export(model, args.format, path, training_script=args.training_script)
    except spec.ProjectError as error:
        return _bad_input(error.lines(), args.json)
    except ExportError as error:
        return _bad_input([f"guidl export: {error}"], args.json)
    for note in result.notes:
        print(f"warning: {note}" if "untrained" in note else f"note: {note}", file=sys.stderr)
    difference = "" if result.max_difference is None else f"; largest difference from the model: {result.max_difference:.3g}"
    opset = f" (ONNX opset {result.opset})" if result.opset else ""
    if args.json:
        print(json.dumps({"ok": True, "path": str(result.path), "format": result.format,
                          "max_difference": result.max_difference, "opset": result.opset,
                          "notes": result.notes}))
    else:
        print(f"wrote {result.path}{opset}{difference}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from . import spec
    from .engine.export import ExportError, load_trained
    from .engine.predict import PredictError, predict, read_each

    try:
        model = load_trained(args.model, samples=False)  # the data is not needed to predict
        if model.task == "gan":
            return _bad_input([f"guidl predict: {args.model} is a GAN: its generator makes samples "
                               f"from noise; use guidl generate {args.model} -n 64 -o grid.png"],
                              args.json)
        inputs = read_each(model, args.inputs)  # a bad file is reported, the others predicted
        if inputs.x is None:
            return _unreadable_inputs(inputs, args.json, predicted=False)
        x, names = inputs.x, inputs.names
        if model.task == "reconstruction":
            return _reconstruct(args, model, x, names, inputs)
        if args.out_dir:
            return _bad_input([f"guidl predict: --out-dir is for an autoencoder's reconstructions; "
                               f"{args.model} is a {model.task or 'classification'} model"], args.json)
        results = predict(model, x, args.top_k, names)
    except spec.ProjectError as error:
        return _bad_input(error.lines(), args.json)
    except (ExportError, PredictError) as error:
        return _bad_input([f"guidl predict: {error}"], args.json)
    if not model.trained:
        print("warning: the model is untrained: its predictions are random", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": not inputs.failed, "predictions": [
            {"input": name, "top": [{"class": c, "probability": p} for c, p in top]}
            for name, top in zip(names, results)], **_failed_json(inputs)}))
    else:
        for name, top in zip(names, results):
            print(f"{name}: " + ", ".join(f"{c} {p:.1%}" if model.task == "classification" else f"{p:.6g}"
                                          for c, p in top))
    return _unreadable_inputs(inputs, args.json, True, len(args.inputs))


def _failed_json(inputs) -> dict:
    """The ``failed`` entry of predict's JSON: each file not used, with why."""
    return {"failed": [{"input": path, "error": message} for path, message in inputs.failed]} \
        if inputs.failed else {}


def _unreadable_inputs(inputs, as_json: bool, predicted: bool, given: int = 0) -> int:
    """Each input file predict could not use, on stderr; exit status 2 when
    there was one (after the others' results), else 0."""
    if not inputs.failed:
        return 0
    lines = [f"guidl predict: {message}" for message in inputs.problems()]
    if predicted:
        lines.append(f"guidl predict: could not read {len(inputs.failed)} of the {given} input files; "
                     "the results are the others'")
    for line in lines:
        print(line, file=sys.stderr)
    if as_json and not predicted:
        print(json.dumps({"ok": False, "predictions": [], **_failed_json(inputs), "problems": lines}))
    return EXIT_BAD_INPUT


def _reconstruct(args: argparse.Namespace, model, x, names: list[str], read) -> int:
    """``guidl predict`` on an autoencoder: each input's reconstruction error,
    and with --out-dir the input beside its reconstruction as PNGs."""
    from pathlib import Path

    from .engine.predict import reconstruct, save_reconstructions

    inputs, outputs, errors = reconstruct(model, x, names)
    written = save_reconstructions(model, inputs, outputs, names, Path(args.out_dir)) \
        if args.out_dir else []
    if not model.trained:
        print("warning: the model is untrained: its reconstructions are random", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": not read.failed, "reconstructions": [
            {"input": name, "error": error, **({"image": str(written[i])} if written else {}),
             **({} if written else {"output": outputs[i].flatten().tolist()})}
            for i, (name, error) in enumerate(zip(names, errors))], **_failed_json(read)}))
        return _unreadable_inputs(read, args.json, True, len(args.inputs))
    for i, (name, error) in enumerate(zip(names, errors)):
        print(f"{name}: reconstruction error (MSE) {error:.6g}" + (f" -> {written[i]}" if written else ""))
    if not written and inputs.dim() == 4:
        print("note: add --out-dir DIR to write each input beside its reconstruction", file=sys.stderr)
    return _unreadable_inputs(read, args.json, True, len(args.inputs))


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import spec
    from .engine import sampling
    from .engine.export import ExportError

    text_options = [o for o, v in (("--prompt", args.prompt), ("--length", args.length),
                                   ("--temperature", args.temperature)) if v is not None]
    try:
        kind = sampling.kind_of(Path(args.run_dir))
        if kind == "text":
            if args.label is not None:
                raise sampling.GenerateError("--label is for a conditional GAN, not a text model")
            prompt, text, temperature = sampling.text(
                Path(args.run_dir), prompt=args.prompt, length=args.length,
                temperature=args.temperature, seed=args.seed)
            if args.output:
                from .spec import atomic_write_text

                atomic_write_text(Path(args.output), prompt + text)
            if args.json:
                print(json.dumps({"ok": True, "prompt": prompt, "text": text, "temperature": temperature,
                                  "seed": args.seed, "path": args.output}))
            else:
                print(prompt + text)
            return 0
        if text_options:
            raise sampling.GenerateError(f"{', '.join(text_options)}: for a text model only; "
                                         f"{args.run_dir} makes images: use -n and -o")
        samples = sampling.images(Path(args.run_dir), args.n, seed=args.seed, label=args.label)
        from .engine.generation import save_grid

        pictures = samples.values.dtype.name == "uint8"
        path = Path(args.output or ("samples.png" if pictures else "samples.csv"))
        if pictures:
            if path.suffix.lower() != ".png":
                raise sampling.GenerateError(f"{path}: the samples are images, written as PNG: give "
                                             "-o NAME.png")
            save_grid(samples.values, path)
        else:
            sampling.save_values_csv(samples.values, path)
    except spec.ProjectError as error:
        return _bad_input(error.lines(), args.json)
    except (sampling.GenerateError, ExportError) as error:
        return _bad_input([f"guidl generate: {error}"], args.json)
    except OSError as error:
        return _bad_input([f"guidl generate: cannot write {error.filename or args.output}: "
                           f"{error.strerror or error}"], args.json)
    what = f"{args.n} samples of the {samples.source}" + (
        f" ({args.label})" if args.label is not None else "")
    if args.json:
        print(json.dumps({"ok": True, "path": str(path), "samples": args.n, "source": samples.source,
                          "seed": args.seed, "labels": samples.labels}))
    else:
        print(f"wrote {path}: {what}")
    return 0


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 10, got {value:g}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _summary(args: argparse.Namespace) -> int:
    from . import spec

    try:
        project = spec.load(args.project)
    except spec.ProjectError as error:
        return _bad_input(error.lines(), args.json)  # answered before torch is even imported
    if project.task is not None:
        return _task_summary(args, project)
    from .engine.build import analyze, check_training_memory
    from .engine.data import expected_input
    from .engine.summary import summary_text

    shape, dtype = expected_input(project)
    model = project.model
    model.input_dtype = dtype
    report = analyze(model, shape)
    problems = report.problems()
    if problems:
        return _bad_input([f"{args.project}: {p}" for p in problems], args.json)
    memory = check_training_memory(project, report)  # training refuses it; summary warns
    if memory is not None:
        print(f"warning: {args.project}: {memory}", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": True, "name": project.name, **report.to_dict(),
                          "warnings": [] if memory is None else [str(memory)]}))
    else:
        sys.stdout.write(summary_text(report, project.name))
    return 0


def _task_summary(args: argparse.Namespace, project) -> int:
    """``guidl summary`` of a project with a task: each network analysed with
    the input it gets (a generator: the noise), and the task's checks against
    what the catalogue knows of the data (the user's own files: after loading)."""
    import copy

    from .engine.build import analyze, check_training_memory
    from .engine.checks import catalogue_info
    from .engine.data import expected_input
    from .engine.summary import summary_text
    from .engine.task_checks import network_problems, task_problems, task_reports

    info = catalogue_info(project)
    if info is not None:
        reports = task_reports(project, info)
        problems, warnings_ = task_problems(project, info, reports)
    else:  # only loading tells the data's shape: each network as the file says
        reports = {}
        for name, network in project.networks().items():
            plain = project.copy()
            plain.model = copy.deepcopy(network)
            shape, dtype = expected_input(plain)
            if project.task_type == "gan" and name == "model" and network.input_shape is None:
                shape = (int(project.task_params()["noise_dim"]),)
            plain.model.input_dtype = "float32" if project.task_type == "gan" else dtype
            reports[name] = analyze(plain.model, shape)
        problems = [p for name, report in reports.items() for p in network_problems(name, report)]
        warnings_ = []
    if problems:
        return _bad_input([f"{args.project}: {p}" for p in problems], args.json)
    memory = check_training_memory(project, reports["model"])
    notes = list(warnings_) + ([] if memory is None else [str(memory)])
    for note in notes:
        print(f"warning: {args.project}: {note}", file=sys.stderr)
    gan = project.task_type == "gan"
    titles = {"model": f"{project.name} generator" if gan else project.name,
              "discriminator": f"{project.name} discriminator"}
    if args.json:
        others = {name: report.to_dict() for name, report in reports.items() if name != "model"}
        print(json.dumps({"ok": True, "name": project.name, "task": project.task_type,
                          **reports["model"].to_dict(), **others, "warnings": notes}))
    else:
        sys.stdout.write("\n".join(summary_text(report, titles[name]) for name, report in reports.items()))
    return 0


def _train(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from . import spec
    from .formatting import first_line

    # Started by torchrun, process 0 alone prints and writes the run folder;
    # the others stay quiet but for failures of their own.
    rank = _torchrun_rank()
    quiet = rank != 0
    if bool(args.project) == bool(args.resume):
        return _bad_input(["guidl train: give a project file, or --resume RUN_DIR (not both)"], False,
                          quiet)
    if args.weights and args.resume:
        return _bad_input([f"guidl train: --weights starts a new training; {args.resume}'s checkpoint "
                           "holds the weights to resume from"], args.json, quiet)
    from .engine.runs import RunError, is_free_run_dir, read_run

    checkpoint = None
    run_dir: Path | None = None
    if args.resume:
        run_dir = Path(args.resume)
        source = run_dir / "project.guidl.json"
        checkpoint = run_dir / "checkpoint.pt"
        if not os.path.lexists(checkpoint):  # anything else is opened and explained below
            return _bad_input([f"{run_dir}: no checkpoint.pt to resume from (no epoch of this run "
                               f"had finished); train anew: guidl train {source} --out NEW_DIR"],
                              args.json, quiet)
        try:
            record = read_run(run_dir)  # a run whose process is gone is marked failed here
        except RunError:
            record = {}  # a damaged record does not stop a resume: the checkpoint holds the state
        if record.get("status") == "running" and not quiet:
            return _bad_input([f"{run_dir}: this run is still training (process {record.get('pid')} on "
                               f"{record.get('host')}); wait for it to end, or stop it, then resume"],
                              args.json, quiet)
    else:
        source = Path(args.project)
        if args.out and not is_free_run_dir(args.out):
            out = Path(args.out)
            fix = (f"use --resume {out} to continue it, or another --out"
                   if (out / "checkpoint.pt").is_file() else "give another --out (a new or empty folder)")
            return _bad_input([f"guidl train: {out} exists: {fix}"], args.json, quiet)
    try:
        project = spec.load(source)
    except spec.ProjectError as error:
        return _bad_input(error.lines(), args.json, quiet)
    if not args.resume and args.out:
        run_dir = Path(args.out)  # claimed, exclusively, when training starts (RunFolder)
    if args.epochs:
        project.training.epochs = args.epochs
    if args.batch_size:
        project.data.batch_size = args.batch_size
    if args.device:
        project.training.device = args.device
        problems = project.problems()
        if problems:
            return _bad_input([f"--device: {p.message}" for p in problems if "device" in p.path],
                              args.json, quiet)
    problem = None if args.resume else _pretrained_weights(project, args.weights, quiet)
    if problem:
        return _bad_input([f"guidl train: {problem}"], args.json, quiet)

    import torch

    from .engine.callbacks import EarlyStopping, ProgressBar, RunFolder
    from .engine.data import DatasetError
    from .engine.distributed import DistributedContext, DistributedSetupError
    from .engine.threads import ThreadTuner, can_follow_load, threads_set_by_user
    from .engine.backbones import WeightsError
    from .engine.checkpoint_checks import CheckpointError
    from .engine.trainer import NonFiniteLossError, TrainControl, Trainer, TrainingError, describe_error

    try:
        context = DistributedContext.from_environment(project.training.device, args.backend)
    except DistributedSetupError as error:
        return _bad_input([f"guidl train: {error}"], args.json, quiet)
    if context is None and args.backend != "auto":
        print(f"note: --backend {args.backend} applies only to several processes started by torchrun",
              file=sys.stderr)
    from .engine.runs import RunBusyError, RunExistsError, RunWriteError, create_run_dir

    made_run_dir = False
    if run_dir is None and not quiet:
        # runs/NAME-TIME, made exclusively: two trainings in the same second get two folders.
        try:
            run_dir = create_run_dir(Path("runs"), source.name.split(".")[0] or "run")
        except OSError as error:
            print(f"guidl train: cannot make a run folder in {Path('runs').absolute()}: "
                  f"{error.strerror or error}", file=sys.stderr)
            return 1
        made_run_dir = True
    callbacks: list = []
    if not quiet:
        callbacks += [ProgressBar(lines=sys.stderr if args.json else sys.stdout),
                      RunFolder(run_dir, resume=bool(args.resume), source=None if args.resume else source)]
    if project.training.early_stopping is not None:
        callbacks.append(EarlyStopping(**project.training.early_stopping))  # on every process
    if context is None and not threads_set_by_user() and can_follow_load():
        callbacks.append(ThreadTuner())  # fewer threads while other programs hold cores
    if args.tensorboard:
        try:
            from .engine.callbacks import TensorBoardLogger

            if not quiet:
                callbacks.append(TensorBoardLogger(run_dir / "tensorboard"))
        except ImportError:
            if made_run_dir:
                _remove_if_empty(run_dir)
            return _bad_input(["--tensorboard needs the tensorboard package: pip install tensorboard"],
                              args.json, quiet)
    checkpoint_file = None
    if checkpoint is not None:
        from .engine.checkpoint_checks import checkpoint_size_limit

        try:  # a regular file of the size a checkpoint of this model can have: never a FIFO
            checkpoint_file = spec.open_regular_file(checkpoint, checkpoint_size_limit(project),
                                                     "a checkpoint of this model")
        except spec.UnreadableFileError as error:
            return _bad_input([f"guidl train: cannot resume from {error}"], args.json, quiet)
    control = TrainControl()
    trainer = Trainer(project, callbacks=callbacks, control=control, distributed=context)
    if context is not None and not quiet:
        size = project.data.batch_size
        print(f"guidl: training in {context.world_size} processes ({context.backend}, "
              f"{'cuda:LOCAL_RANK' if context.device.type == 'cuda' else 'cpu'}): batch size {size} "
              f"per process, {size * context.world_size} per step", file=sys.stderr)

    # torchrun passes its SIGINT or SIGTERM on to every process: both stop
    # them after the same batch, as Ctrl+C stops a single process.
    stop_signals = [signal.SIGINT] + ([signal.SIGTERM] if context is not None else [])

    def stop(signum, frame):
        if context is not None and not quiet:
            print(f"\nguidl: stopping every process within {getattr(trainer, 'sync_every', 16)} "
                  "batches", file=sys.stderr)
        elif not quiet:
            print("\nguidl: stopping after this batch (Ctrl+C again to abort)", file=sys.stderr)
        control.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if context is not None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    previous = {signum: signal.signal(signum, stop) for signum in stop_signals}
    try:
        if checkpoint is not None:
            try:
                state = torch.load(checkpoint_file, map_location="cpu", weights_only=True)
            except Exception as error:  # noqa: BLE001 - any unreadable file gets the same answer
                return _bad_input([f"{checkpoint}: not a readable guidl checkpoint ({first_line(error)})"],
                                  args.json, quiet)
            finally:
                checkpoint_file.close()
            trainer.load_state_dict(state)
        if context is not None:
            context.start()
        result = trainer.fit()
    except CheckpointError as error:  # damaged, or made with another setup than the project's
        return _bad_input([f"{checkpoint}: {error}"], args.json, quiet)
    except WeightsError as error:  # offline, or a weights file that does not fit: the message says what to do
        return _bad_input([f"guidl train: {error}"], args.json, quiet)
    except RunExistsError as error:  # another training took the folder first
        return _bad_input([f"guidl train: {error.path} exists: use another --out"], args.json, quiet)
    except RunBusyError as error:  # another resume of the same run holds it
        return _bad_input([f"guidl train: {error}"], args.json, quiet)
    except RunWriteError as error:  # a full disk, a read-only folder: not a bug, not bad input
        print(f"guidl train: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": str(error), "run_dir": str(run_dir)}))
        return 1
    except (spec.ProjectError, DatasetError) as error:
        lines = error.lines() if isinstance(error, spec.ProjectError) else [str(error)]
        own = not isinstance(error, spec.ProjectError) and not getattr(error, "from_peer", False)
        return _bad_input([f"{source}: {line}" if isinstance(error, DatasetError) else line
                           for line in lines], args.json, quiet and not own, rank)
    except (TrainingError, RuntimeError, MemoryError, ValueError, TypeError) as error:  # a NaN, out of memory, ...
        # torch raises ValueError and TypeError for data or a model it cannot take: one line with
        # the type (a bug in guidl stays recognisable), the whole traceback with GUIDL_DEBUG=1.
        if os.environ.get("GUIDL_DEBUG"):
            traceback.print_exc()
        # Every process raises a non-finite loss alike; other failures may be one's own.
        own = not isinstance(error, NonFiniteLossError) and not getattr(error, "from_peer", False)
        if not quiet or own:
            print(f"guidl train{f' [rank {rank}]' if quiet else ''}: {describe_error(error)}",
                  file=sys.stderr)
        if args.json and not quiet:
            print(json.dumps({"ok": False, "error": describe_error(error), "run_dir": str(run_dir)}))
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if context is not None:
            context.close()
        if made_run_dir:
            _remove_if_empty(run_dir)  # the run failed before it began: no empty folder stays
    if quiet:
        return 130 if control.stop_requested else 0
    for note in trainer.notes:
        print(f"note: {note}", file=sys.stderr)
    summary = _result_summary(result, run_dir)
    if result.stopped:
        print(f"{result.stop_reason}; run folder: {run_dir}", file=sys.stderr)
    else:
        print(f"done in {result.elapsed:.1f}s; run folder: {run_dir}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    elif result.evaluation is not None:
        print(_evaluation_line(result))
    return 130 if control.stop_requested else 0


def _pretrained_weights(project, weights_file: str | None, quiet: bool) -> str | None:
    """Apply ``--weights FILE`` to ``project`` and fetch the named weights of
    its backbones before training, with a progress line on stderr; the
    problem to report (exit 2), or None."""
    from .engine.backbones import WeightsError
    from .engine.pretrained import WeightsOptionError, backbone_layers, fetch_project_weights, use_weights_file

    if not weights_file and not backbone_layers(project):
        return None
    try:
        if weights_file:
            note = use_weights_file(project, weights_file)
            if note and not quiet:
                print(f"note: {note}", file=sys.stderr)
        fetch_project_weights(project, progress=None if quiet else DownloadBar)
    except (WeightsOptionError, WeightsError) as error:
        return str(error)
    return None


class DownloadBar:
    """A download's progress on stderr: one line redrawn in a terminal, a
    line every quarter otherwise (a log keeps them)."""

    def __init__(self, label: str, file_mb: float, stream=None):
        self.label = label
        self.file_mb = file_mb
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        total = total if total and total > 0 else int(self.file_mb * 2**20)
        fraction = min(1.0, done / total) if total else 0.0
        # MB as torchvision's metadata counts them (2**20 bytes), as the messages quote it.
        line = (f"downloading {self.label}: {fraction:4.0%}  "
                f"{done / 2**20:.1f} of {total / 2**20:.1f} MB")
        if self.tty:
            width = 24
            filled = int(fraction * width)
            self.stream.write(f"\r{line}  [{'#' * filled}{'.' * (width - filled)}]")
            if done >= total:
                self.stream.write("\n")
        else:
            step = int(fraction * 4)
            if step == self._shown:
                return
            self._shown = step
            self.stream.write(line + "\n")
        self.stream.flush()


def _remove_if_empty(path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (the run wrote its record): kept


def _result_summary(result, run_dir) -> dict:
    final = result.final.to_dict() if result.final else None
    evaluation = result.evaluation.to_dict() if result.evaluation else None
    if evaluation:
        for key in ("worst", "codes", "code_labels"):  # long lists: run.json holds them
            evaluation.pop(key, None)
    return {"ok": True, "run_dir": str(run_dir), "stopped": result.stopped,
            "stop_reason": result.stop_reason, "epochs_completed": len(result.history),
            "final": final, "evaluation_split": result.evaluation_split, "evaluation": evaluation,
            "elapsed_s": result.elapsed}


def _evaluation_line(result) -> str:
    e = result.evaluation
    split = result.evaluation_split
    if hasattr(e, "accuracy"):
        return (f"{split}: accuracy {e.accuracy:.2%}  macro precision {e.macro_precision:.3f}  "
                f"macro recall {e.macro_recall:.3f}  macro F1 {e.macro_f1:.3f}  loss {e.loss:.4f}")
    if hasattr(e, "psnr"):  # an autoencoder
        return (f"{split}: MSE {e.mse:.4g} (always the mean sample: {e.baseline_mse:.4g})  "
                f"PSNR {e.psnr:.2f} dB" + ("" if e.loss is None else f"  loss {e.loss:.4f}"))
    if hasattr(e, "sample_diversity"):  # a GAN: a classifier's view of the samples, not FID
        judge = "" if e.judge_confidence is None else (
            f"judge confidence {e.judge_confidence:.1%}  class coverage {e.judge_coverage:.0%}  ")
        fake = "" if e.d_fake is None else f"  D(x) {e.d_real:.3f}  D(G(z)) {e.d_fake:.3f}"
        return f"{e.samples} generated samples: {judge}diversity {e.sample_diversity:.2f}{fake}"
    return f"{split}: MAE {e.mae:.4g}  MSE {e.mse:.4g}  R^2 {e.r2:.4f}  loss {e.loss:.4f}"


def _bad_input(lines: list[str], as_json: bool, quiet: bool = False, rank: int = 0) -> int:
    """Print the problems (unless ``quiet``: another process prints them) and
    return the exit status for bad input."""
    if quiet:
        return EXIT_BAD_INPUT
    prefix = f"[rank {rank}] " if rank else ""
    for line in lines:
        print(prefix + line, file=sys.stderr)
    if as_json and not rank:
        print(json.dumps({"ok": False, "problems": lines}))
    return EXIT_BAD_INPUT


def _torchrun_rank() -> int:
    """This process's rank when torchrun started several (0 otherwise)."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1") or "1") > 1:
            return int(os.environ.get("RANK", "0"))
    except ValueError:
        pass  # DistributedContext.from_environment explains it
    return 0


COMMANDS = ("summary", "train", "export", "predict", "generate", "runs", "sweep")


def _gui(project: str | None) -> int:
    try:
        from .qt.app import main as gui_main
    except ImportError as error:
        print(f"guidl: the desktop app cannot start: {error}. Install PySide6-Essentials and "
              "pyqtgraph, or use the headless commands (guidl --help).", file=sys.stderr)
        return 1
    return gui_main(project)


_shown_warnings: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning (torch's, NumPy's...) as one ``note:`` line, once, without
    the source path and line Python prints."""
    from .formatting import warning_text

    text = warning_text(message, category, filename)
    if text not in _shown_warnings:
        _shown_warnings.add(text)
        print(f"note: {text}", file=sys.stderr)


def _stdout_closed() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has gone: poll says POLLERR."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no real stdout
        return True  # nothing to tell it apart by: the likely case is stdout's reader


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None  # not called from Python (a test), which must go on
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        return _gui(None)
    if argv[0] not in COMMANDS and not argv[0].startswith("-") and len(argv) == 1:
        return _gui(argv[0])  # guidl PROJECT.guidl.json opens the window
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would report these under the top-level usage: the command's own
        parser.commands.choices.get(args.command, parser).error(  # type: ignore[attr-defined]
            "unrecognized arguments: " + " ".join(unknown))
    if args.command is None:
        parser.print_help()
        return 0
    warnings.showwarning = _show_warning
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        if args.command == "sweep" and from_command_line:
            from .sweep_cli import exit_now

            exit_now(code)  # skips the interpreter's seconds of teardown when that is safe
        return code
    except KeyboardInterrupt:
        print("guidl: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - last line of defence: no raw traceback
        if isinstance(error, BrokenPipeError) and _stdout_closed():
            # The reader of stdout went away (guidl runs | head -1): end quietly, as Unix
            # tools do. devnull over stdout keeps Python's flush at exit from failing again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return 141  # what a shell reports for a process ended by SIGPIPE
        if os.environ.get("GUIDL_DEBUG"):
            traceback.print_exc()
        print(f"guidl: internal error: {type(error).__name__}: {error}\n"
              "This is a bug in guidl; run again with GUIDL_DEBUG=1 for the details.",
              file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": f"internal error: {type(error).__name__}: {error}"}))
        return 1
