"""`gatecast` command line: train, evaluate, export (need the `train` extra) and serve (does not).

The training commands import `training` lazily, so `gatecast serve` works in an image without torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.config import RunConfig


def _need_training() -> None:
    if importlib.util.find_spec("torch") is None:
        sys.exit("gatecast: this command needs the training extra: pip install 'gatecast[train]'")


def _configs(paths: list[str]) -> list[RunConfig]:
    from training.config import RunConfig

    return [RunConfig.load(p) for p in paths]


def _training_command(args: argparse.Namespace, step: str) -> None:
    """train | evaluate | export | pipeline for each config; known failures end with their message, not a trace."""
    _need_training()
    from training import pipeline
    from training.artifacts import NameTaken, StaleEvaluation

    if args.quiet:
        logging.getLogger().setLevel(logging.WARNING)
    root = Path(args.root)
    try:
        configs = _configs(args.config)
        if step == "pipeline" and len(configs) > 1 and not args.one_at_a_time:
            _pipeline_in_parallel(configs, root, args)
            return
        for config in configs:
            if step == "train":
                pipeline.run_train(config, root, progress=not args.quiet, force=args.force)
            elif step == "evaluate":
                pipeline.run_evaluate(config, root, force=args.force)
            elif step == "export":
                pipeline.run_export(config, root, force=args.force)
            else:
                pipeline.run_all(config, root, progress=not args.quiet, force=args.force)
                if not args.quiet:
                    print(pipeline.run_summary(config, root), flush=True)
    except (NameTaken, StaleEvaluation, FileNotFoundError, ValueError) as exc:
        sys.exit(f"gatecast {step}: {exc}")


def _pipeline_in_parallel(configs: list[RunConfig], root: Path, args: argparse.Namespace) -> None:
    """Several configs: each a Ray task with its share of the cores (training.parallel)."""
    from training.parallel import run_many

    failed = []
    for _, text, ok in run_many(configs, root, force=args.force):
        if not ok:
            failed.append(text)
        elif not args.quiet:
            print(text, flush=True)
    if failed:
        sys.exit("gatecast pipeline: " + "; ".join(failed))


def cmd_tune(args: argparse.Namespace) -> None:
    _need_training()
    from training import pipeline, tune

    root = Path(args.root)
    try:
        config = _configs([args.config])[0]
        report = tune.run(config, root, args.trials, args.cpus_per_trial, args.max_epochs, args.seed)
        best = tune.best_config(config, report, root)
        folder = tune.write_report(report, best, root)
        print(f"{report['trials']} trials ({report['finished']} finished); report: {folder / 'tune.md'}", flush=True)
        if args.no_export:
            return
        pipeline.run_all(best, root, progress=not args.quiet, force=args.force)
        print(pipeline.run_summary(best, root), flush=True)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        sys.exit(f"gatecast tune: {exc}")


def cmd_init(args: argparse.Namespace) -> None:
    _need_training()
    from training.init import write_config

    try:
        path = write_config(args.name, Path(args.data), Path(args.root), args.cell)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        sys.exit(f"gatecast init: {exc}")
    print(f"wrote {path}; next: gatecast pipeline {path}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    """The base model (training.pretrain): its corpus, the pretraining and the export."""
    _need_training()
    from training import pretrain

    pretrain.main(args.rest)


def cmd_serve(args: argparse.Namespace) -> None:
    from app.supervisor import serve

    serve(host=args.host, port=args.port, workers=args.workers, models=args.models, grpc_port=args.grpc_port)


def cmd_bench(args: argparse.Namespace) -> None:
    """The benchmarks live in bench/ of a source checkout, not in the installed package."""
    root = Path(args.root).resolve()
    if not (root / "bench" / f"{args.suite}.py").exists():
        sys.exit(f"gatecast: bench/{args.suite}.py not found under {root}; run from a source checkout (--root)")
    sys.path.insert(0, str(root))
    module = importlib.import_module(f"bench.{args.suite}")
    sys.argv = [f"bench.{args.suite}", *args.rest]
    module.main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatecast", description="LSTM/GRU forecasters: train, export, serve.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("train", "train a model from a TOML config (best checkpoint under runs/<name>/)"),
        ("evaluate", "evaluate the checkpoint on the test split; write reports/<name>/"),
        ("export", "export to models/<name>/<version>/model.onnx and validate in onnxruntime"),
        ("pipeline", "train, evaluate and export in one go"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", nargs="+", help="TOML file(s), e.g. my-model.toml (see `gatecast init`)")
        p.add_argument("--root", default=".", help="project folder holding runs/, reports/ and models/")
        p.add_argument("--quiet", action="store_true", help="no progress bar, warnings and errors only")
        p.add_argument("--force", action="store_true", help="overwrite runs, reports and models another run made")
        p.add_argument(
            "--one-at-a-time",
            action="store_true",
            help="several configs one after another in this process, not as parallel Ray tasks",
        )
        p.set_defaults(func=lambda args, step=name: _training_command(args, step))
    tune_cmd = sub.add_parser("tune", help="search hyperparameters on validation (Ray Tune, Optuna), export the best")
    tune_cmd.add_argument("config", help="TOML file: the search starts from it (its values are the first trial)")
    tune_cmd.add_argument("--trials", type=int, default=20, help="trials to run (default 20)")
    tune_cmd.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs Ray gives each trial (default 1)")
    tune_cmd.add_argument(
        "--max-epochs", type=int, default=None, help="cap every trial's epochs (default: the config's)"
    )
    tune_cmd.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    tune_cmd.add_argument("--root", default=".", help="project folder holding runs/, reports/ and models/")
    tune_cmd.add_argument("--no-export", action="store_true", help="search and report only")
    tune_cmd.add_argument("--quiet", action="store_true", help="no progress for the final run")
    tune_cmd.add_argument("--force", action="store_true", help="overwrite a run, report or model another run made")
    tune_cmd.set_defaults(func=cmd_tune)
    pretrain = sub.add_parser(
        "pretrain",
        help="train the base model for any series on its corpus (training/configs/pretrain/gatecast-base.toml)",
        add_help=False,
    )
    pretrain.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of `python -m training.pretrain --help`")
    pretrain.set_defaults(func=cmd_pretrain)
    init = sub.add_parser("init", help="write NAME.toml for your own `unique_id, ds, y` data, every key documented")
    init.add_argument("name", help="the model's name (models/<name>/)")
    init.add_argument("--data", required=True, help="a `unique_id, ds, y` .csv or .parquet file")
    init.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    init.add_argument("--root", default=".", help="project folder holding runs/, reports/ and models/")
    init.set_defaults(func=cmd_init)
    serve = sub.add_parser("serve", help="serve every model in the model repository over HTTP")
    serve.add_argument("--host", default=None, help="default: GATECAST_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="HTTP port; default: GATECAST_PORT or 8000")
    serve.add_argument(
        "--grpc-port", type=int, default=None, help="gRPC port, 0 for none; default: GATECAST_GRPC_PORT or 8001"
    )
    serve.add_argument("--workers", type=int, default=None, help="default: GATECAST_WORKERS or one per usable CPU")
    serve.add_argument("--models", default=None, help="model folder; default: GATECAST_MODEL_REPOSITORY or ./models")
    serve.set_defaults(func=cmd_serve)
    bench = sub.add_parser("bench", help="run a benchmark or page generator from bench/ (see `gatecast bench -h`)")
    suites = [
        "serving",
        "protocols",
        "streams",
        "accuracy",
        "claims",
        "memory_cost",
        "soak",
        "reliability",
        "docs_pages",
        "readme",
        "zeroshot",
    ]
    bench.add_argument("suite", choices=suites)
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark (see --help of each)")
    bench.add_argument("--root", default=".", help="source checkout holding bench/")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
