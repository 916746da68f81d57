"""`hpcmind train dataset|rca`."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from hpcmind.errors import UsageError
from hpcmind.settings import Settings


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    out = getattr(args, "out", None)
    if out is not None and out.exists() and not out.is_dir():  # every train --out is a directory
        raise UsageError(f"--out {out}: exists and is not a directory")
    if args.what == "dataset":
        from .dataset import build

        if args.runs < 5:
            raise UsageError("--runs: at least 5 (one test, one validation and three training runs)")
        seeds = list(range(args.first_seed, args.first_seed + args.runs))
        with tqdm(total=len(seeds), unit="run", desc="dataset", file=sys.stderr) as bar:
            counts = build(args.out, seeds, args.views, args.workers, progress=bar.update)
        print(f"{args.out}: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}; card {args.out}/DATA_CARD.md")
        return 0
    if args.what == "export":
        from .export import export_merged

        out = export_merged(settings.model.cache_dir, args.adapter or settings.model.artifacts / "adapter", args.out)
        print(f"{out}: merged model; serve it with `vllm serve {out}` (GPU) or `transformers serve {out}` (CPU)")
        return 0
    if args.what == "encoder":
        from .train_encoder import run as run_encoder

        for name in ("per_cause", "epochs"):
            if getattr(args, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')}: must be positive")
        if not 0 <= args.max_false < 1:
            raise UsageError("--max-false: a share between 0 and 1")
        return run_encoder(args, settings)
    from .train_rca import run

    return run(args, settings)
