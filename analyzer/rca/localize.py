"""Which GPU or node deviated first: polars over the metric windows of a bundle.

Each series is compared with its own baseline (the first third of its window); the first sample more than
`Z` robust standard deviations (and a minimum absolute step) away marks its onset. The earliest onset among the
series a diagnosis rests on names the culprit.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from hpcmind.contract import MetricSeries

from .metric_rules import host_of

Z = 4.0
MIN_STEP = 1e-9


def onsets(series: Sequence[MetricSeries]) -> pl.DataFrame:
    """One row per series that deviates: index, host, gpu, onset, size of the deviation, baseline and peak."""
    rows = [(i, t, v) for i, s in enumerate(series) for t, v in s.values]
    if not rows:
        return pl.DataFrame(
            schema={
                "series": pl.Int64,
                "onset": pl.Float64,
                "jump": pl.Float64,
                "baseline": pl.Float64,
                "peak": pl.Float64,
                "host": pl.String,
                "gpu": pl.String,
            }
        )
    df = pl.DataFrame(rows, schema={"series": pl.Int64, "ts": pl.Float64, "value": pl.Float64}, orient="row")
    df = df.filter(pl.col("value").is_finite()).sort("series", "ts")
    df = df.with_columns(pl.int_range(pl.len()).over("series").alias("k"), pl.len().over("series").alias("n"))
    base = (
        df.filter(pl.col("k") < (pl.col("n") / 3).ceil().clip(lower_bound=1))
        .group_by("series")
        .agg(
            pl.col("value").median().alias("med"),
            (pl.col("value") - pl.col("value").median()).abs().median().alias("mad"),
        )
    )
    dev = (
        df.join(base, on="series")
        .with_columns(((pl.col("value") - pl.col("med")).abs()).alias("jump"))
        .filter(
            (pl.col("jump") > Z * 1.4826 * pl.col("mad"))
            & (pl.col("jump") > MIN_STEP)
            & (pl.col("k") >= (pl.col("n") / 3).ceil())
        )
        .group_by("series")
        .agg(
            pl.col("ts").min().alias("onset"),
            pl.col("jump").max().alias("jump"),
            pl.col("med").first().alias("baseline"),
            pl.col("value").sort_by("jump").last().alias("peak"),
        )
    )
    meta = pl.DataFrame(
        {
            "series": list(range(len(series))),
            "host": [host_of(s.labels) for s in series],
            "gpu": [s.labels.get("gpu") for s in series],
        },
        schema={"series": pl.Int64, "host": pl.String, "gpu": pl.String},
    )
    return dev.join(meta, on="series").sort("onset", "series")


def first_deviator(series: Sequence[MetricSeries], indices: Sequence[int]) -> tuple[str | None, str | None]:
    """(host, gpu) of the earliest-deviating series among `indices`, or (None, None)."""
    if not indices:
        return None, None
    sub = [series[i] for i in indices]
    df = onsets(sub)
    if df.is_empty():
        return None, None
    row = df.row(0, named=True)
    return row["host"], row["gpu"]
