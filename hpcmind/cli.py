"""The `hpcmind` command line. Exit codes: 0 success, 1 failure, 2 bad usage or bad input."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .errors import NotBuiltError, UsageError
from .settings import Settings, SettingsError, load_settings, masked_dump

SUBCOMMANDS = (
    "simulate", "collect", "serve", "mcp", "diagnose", "train", "bench", "demo", "workloads", "services", "config"
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error on stderr (exit 2), as the CLI contract asks."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(masked_dump(settings), indent=2))
    return 0


def _cmd_diagnose(args: argparse.Namespace, settings: Settings) -> int:
    from analyzer.diagnose_cli import read_single, run_batch, run_single
    from analyzer.rca import load_engine

    if args.batch:
        return run_batch(load_engine(settings), args.file, sys.stdout)
    bundle = read_single(args.file)  # checked before any model loads
    return run_single(load_engine(settings), bundle, args.json, sys.stdout)


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from analyzer.training.cli import run_train

    return run_train(args, settings)


def _cmd_workloads(args: argparse.Namespace, settings: Settings) -> int:
    from astro_workloads.workloads import run_local, submit

    if args.action == "run":
        return run_local(args.workload, args.fault, args.smoke, args.out)
    print(submit(settings, args.workload, args.fault, args.smoke, args.out))
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator.cli import run_simulate

    return run_simulate(args.scenario, args.duration, args.out, args.seed, args.no_metrics)


def _cmd_collect(args: argparse.Namespace, settings: Settings) -> int:
    from collector.cli import run_collect

    return run_collect(
        args.source,
        settings,
        scenario=args.scenario,
        port=args.port,
        speed=args.speed,
        seed=args.seed,
        bus=args.log_bus,
        follow=args.follow,
        slurm_rest=args.slurm_rest,
        journal=(args.journal, args.journal_unit, args.journal_file),
    )


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from analyzer.app import create_app, preflight

    a = settings.analyzer
    preflight(settings)  # a taken port or an unreachable store: one line and exit 2, not a traceback and exit 3
    uvicorn.run(create_app(settings), host=a.host, port=a.port, log_level="info")
    return 0


def _cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    from analyzer.mcp.transports import run_stdio

    return run_stdio(settings)


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from analyzer.demo import run_demo

    return run_demo(settings, args.scenario, args.speed, args.minutes)


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.target == "simulator":
        from simulator.bench import markdown as sim_md
        from simulator.bench import run as sim_run

        print(sim_md(sim_run(args.out)))
        return 0
    if args.target == "analyzer":
        from analyzer.bench import markdown as an_md
        from analyzer.bench import run as an_run

        print(an_md(an_run(args.out)))
        return 0
    if args.target == "collector":
        from collector.bench import markdown as col_md
        from collector.bench import run as col_run

        print(col_md(col_run(args.out)))
        return 0
    if args.target == "isolation":
        from analyzer.bench_isolation import markdown as iso_md
        from analyzer.bench_isolation import run as iso_run

        print(iso_md(iso_run(args.out)))
        return 0
    if args.target == "mcp":
        from analyzer.mcp.bench import markdown as mcp_md
        from analyzer.mcp.bench import run as mcp_run

        print(mcp_md(mcp_run(settings, args.out)))
        return 0
    if args.target == "transitnet":
        from astro_workloads.transitnet.bench import markdown as tn_md
        from astro_workloads.transitnet.bench import run as tn_run

        print(tn_md(tn_run(args.out)))
        return 0
    if args.target != "rca":
        raise NotBuiltError(f"hpcmind bench {args.target}: not built yet (see its issue)")
    from analyzer.bench_rca import ENGINES, load_labelled, run_side_by_side

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if bad := [e for e in engines if e not in ENGINES]:
        raise UsageError(f"--engines: unknown {', '.join(bad)} (choose from {', '.join(ENGINES)})")
    if args.real is not None:
        # real-dev.jsonl -> rca_real.*, any other set -> rca_<its name>.* (both dev sets side by side in bench/results)
        stem = "rca_real" if args.real.stem == "real-dev" else "rca_" + args.real.stem.replace("-", "_")
        items, title = load_labelled(args.real), f"Root-cause diagnosis on {args.real.name}"
    else:
        if not args.split.exists():
            raise UsageError(f"--split {args.split}: not found; build it with `hpcmind train dataset`")
        items, stem, title = (
            load_labelled(args.split),
            "rca",
            f"Root-cause diagnosis on the held-out split {args.split}",
        )
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        raise UsageError("no labelled incidents to score")
    results = run_side_by_side(items, settings, engines, args.out, stem, title)
    from analyzer.bench_rca import side_by_side_markdown

    print(side_by_side_markdown(results, title))
    print(
        f"wrote {args.out / (stem + '.json')}, {args.out / (stem + '.md')} and {args.out / (stem + '_confusion.png')}"
    )
    return 0


def _cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    from .services.manager import ServiceManager

    mgr = ServiceManager(settings)
    names = mgr.resolve(args.names)
    if args.action == "up":
        return mgr.up(names)
    if args.action == "down":
        return mgr.down(names)
    return mgr.status(names)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hpcmind", description="HPCMind: what broke on the GPU cluster, where, and what to do.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_: str, fn: Callable[[argparse.Namespace, Settings], int]) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    sim = add(
        "simulate",
        "run a cluster scenario accelerated; writes metrics.parquet, logs.jsonl, ground_truth.jsonl",
        _cmd_simulate,
    )
    sim.add_argument(
        "--scenario", required=True, metavar="FILE|NAME", help="scenario YAML or a shipped name (demo, ...)"
    )
    sim.add_argument(
        "--duration", default=None, metavar="DUR", help="simulated time, e.g. 90m, 6h (default: scenario's)"
    )
    sim.add_argument("--out", type=Path, required=True, metavar="DIR")
    sim.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    sim.add_argument("--no-metrics", action="store_true", help="write logs and ground truth only")
    col = add("collect", "serve exporter-compatible /metrics from one source and ship its logs", _cmd_collect)
    col.add_argument(
        "--source",
        required=True,
        action="append",
        choices=["simulator", "slurm", "nvml", "proc"],
        help="metric source (repeatable: --source simulator --source slurm)",
    )
    col.add_argument("--scenario", metavar="FILE|NAME", help="scenario for --source simulator (real time)")
    col.add_argument("--port", type=int, default=None, help="listen port (default: HPCMIND_COLLECTOR__PORT)")
    col.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (simulator)")
    col.add_argument("--seed", type=int, default=None)
    col.add_argument("--log-bus", choices=["http", "kafka", "none"], default=None)
    col.add_argument(
        "--follow",
        action="append",
        default=[],
        metavar="GLOB=SOURCE",
        help="tail files, e.g. '/var/spool/slurm/slurm-*.out=job/{jobid}' (repeatable)",
    )
    col.add_argument(
        "--journal", action="store_true", help="ship the systemd journal's kernel messages (node/<host>/kernel)"
    )
    col.add_argument(
        "--journal-unit", action="append", default=[], metavar="UNIT", help="and this unit's, e.g. slurmd (repeatable)"
    )
    col.add_argument(
        "--journal-file",
        action="append",
        default=[],
        metavar="PATH",
        help="read a journal file or directory (e.g. gathered by systemd-journal-remote) instead of this machine's",
    )
    col.add_argument(
        "--slurm-rest", default=None, metavar="URL", help="slurmrestd: unix:/path.sock or http://host:port"
    )
    add("serve", "run the analyzer service (webhook, API, incident pages, /metrics, MCP at /mcp)", _cmd_serve)
    add("mcp", "serve HPCMind's MCP tools over stdio (what Claude Code / Claude Desktop launch)", _cmd_mcp)
    d = add("diagnose", "diagnose an evidence bundle (see the diagnose contract)", _cmd_diagnose)
    d.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="evidence bundle (JSON); '-' for stdin")
    d.add_argument("--json", action="store_true", help="print exactly one JSON diagnosis")
    d.add_argument("--batch", action="store_true", help="JSON Lines in, one JSON diagnosis per line out")
    t = add("train", "build the dataset and fine-tune the root-cause model", _cmd_train)
    tsub = t.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    tsub.required = True
    td = tsub.add_parser("dataset", help="labelled evidence bundles from simulator runs (split by seed)")
    td.add_argument("--runs", type=int, default=60, help="simulator runs (scenario seeds 0..N-1)")
    td.add_argument("--first-seed", type=int, default=0)
    td.add_argument("--views", type=int, default=2, help="extra views per incident (logs only, noisy, ...)")
    td.add_argument("--workers", type=int, default=2)
    td.add_argument("--out", type=Path, default=Path("data/rca"), metavar="DIR")
    tr = tsub.add_parser("rca", help="fit the encoder head and LoRA-fine-tune SmolLM2 on the dataset")
    tr.add_argument("--data", type=Path, default=Path("data/rca"), metavar="DIR", help="from `train dataset`")
    tr.add_argument("--out", type=Path, default=None, metavar="DIR", help="default: HPCMIND_MODEL__ARTIFACTS")
    tr.add_argument("--steps", type=int, default=None, help="LoRA optimiser steps (default: the full run's)")
    tr.add_argument("--smoke", action="store_true", help="a minutes-long run on a few examples (CI)")
    tr.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    tr.add_argument(
        "--refit-combiner", action="store_true", help="keep adapter and head; refit the combination weights on --data"
    )
    tenc = tsub.add_parser(
        "encoder", help="fine-tune MiniLM (LoRA + head) on simulator bundles and the template corpus"
    )
    tenc.add_argument("--data", type=Path, default=Path("data/rca"), metavar="DIR", help="from `train dataset`")
    tenc.add_argument("--out", type=Path, default=None, metavar="DIR", help="default: HPCMIND_MODEL__ARTIFACTS")
    tenc.add_argument("--per-cause", type=int, default=150, help="corpus bundles per root cause (healthy: 4x)")
    tenc.add_argument("--epochs", type=float, default=1.0)
    tenc.add_argument("--simulator-max", type=int, default=900, help="simulator training bundles sampled")
    tenc.add_argument("--seed", type=int, default=1234)
    tenc.add_argument(
        "--templates",
        choices=["train", "all"],
        default="train",
        help="train: the training half (held-out wordings measure generalisation); all: every template, for the "
        "final fit of a recipe chosen on the split (held-out figures are then in-sample)",
    )
    tenc.add_argument("--max-false", type=float, default=0.03, help="abstention: healthy share given a cause on val")
    tenc.add_argument("--smoke", action="store_true", help="a minutes-long run on a few corpus bundles (CI)")
    tenc.add_argument(
        "--refit-threshold", action="store_true", help="keep adapter and head; refit the abstention threshold"
    )
    te = tsub.add_parser("export", help="merge the adapter into the base model for vLLM / any OpenAI-compatible server")
    te.add_argument("--out", type=Path, required=True, metavar="DIR")
    te.add_argument("--adapter", type=Path, default=None, metavar="DIR", help="default: the committed adapter")
    b = add("bench", "run a benchmark and write bench/results/", _cmd_bench)
    b.add_argument("target", choices=["rca", "simulator", "collector", "analyzer", "isolation", "transitnet", "mcp"])
    b.add_argument("--real", type=Path, default=None, metavar="FILE", help="labelled real incidents (JSON Lines)")
    b.add_argument(
        "--split", type=Path, default=Path("data/rca/test.jsonl"), metavar="FILE", help="rca: the held-out split"
    )
    b.add_argument(
        "--engines",
        default="signatures,base,finetuned,frozen,encoder,mix,hpcmind,openai",
        help="rca: engines side by side (openai only when HPCMIND_MODEL__OPENAI_BASE_URL is set)",
    )
    b.add_argument("--limit", type=int, default=None, help="rca: only the first N incidents")
    b.add_argument("--out", type=Path, default=Path("bench/results"), metavar="DIR")
    demo = add(
        "demo", "the whole pipeline on this machine: simulated cluster, Prometheus, Alertmanager, analyzer", _cmd_demo
    )
    demo.add_argument("--scenario", default="demo", metavar="FILE|NAME")
    demo.add_argument("--speed", type=float, default=5.0, help="simulated seconds per wall second (default 5)")
    demo.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (default: Ctrl-C)")
    w = add("workloads", "run the astro workloads locally or submit them to Slurm", _cmd_workloads)
    w.add_argument("action", choices=["run", "submit"])
    w.add_argument("workload", choices=["transitnet", "astrocode"])
    w.add_argument(
        "--fault",
        default="none",
        help="transitnet: host-oom, nan, hang, slow-data, crash, timeout; astrocode: overload",
    )
    w.add_argument("--smoke", action="store_true", help="a seconds-long run")
    w.add_argument("--out", type=Path, default=Path("/tmp/hpcmind-workloads"), metavar="DIR")
    s = add("services", "install, start, stop and check the local services", _cmd_services)
    s.add_argument("action", choices=["up", "down", "status"])
    s.add_argument("names", nargs="*", metavar="NAME", help="services (default: all)")
    c = add("config", "show the effective settings", _cmd_config)
    c.add_argument("action", choices=["show"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # plain one-line warnings on stderr, configured before anything else can (the MCP SDK's MCPServer would
    # otherwise install a Rich handler on the root logger, wrapping every warning at 80 columns)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings()
        rc: int = args.func(args, settings)
        return rc
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)  # e.g. --out onto an existing file
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
