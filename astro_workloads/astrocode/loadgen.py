"""A load generator for AstroCode (or any OpenAI-compatible server): Poisson arrivals at a target rate.

python -m astro_workloads.astrocode.loadgen --url http://127.0.0.1:8000 --rate 2 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass

import httpx

PROMPTS = (
    "Load a TESS light curve FITS file with astropy and plot flux against time.",
    "Convert RA 10h21m0s, Dec +41d12m to galactic coordinates with astropy.",
    "Run a Box Least Squares periodogram on a light curve and print the best period.",
    "Compute the angular separation between M31 and M33.",
    "Bin a light curve to 30-minute cadence with numpy.",
    "Read the header of a FITS image and print its WCS.",
)


@dataclass
class LoadResult:
    sent: int
    ok: int
    failed: int
    abandoned: int  # still unanswered when the drain time ran out
    p50_s: float
    p95_s: float
    duration_s: float


async def run(
    url: str, rate: float, duration: float, max_tokens: int = 32, seed: int = 0, drain: float | None = None
) -> LoadResult:
    """Send for `duration` s, then wait for the answers (at most `drain` s; None: all of them)."""
    rng = random.Random(seed)
    lat: list[float] = []
    failed = 0
    # open loop: arrivals never wait for a free connection (httpx would cap them at 100 in flight)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one(prompt: str) -> None:
            nonlocal failed
            t0 = time.perf_counter()
            try:
                r = await client.post(
                    "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens},
                )
                r.raise_for_status()
                lat.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                failed += 1

        tasks = []
        start = time.perf_counter()
        while time.perf_counter() - start < duration:
            tasks.append(asyncio.create_task(one(rng.choice(PROMPTS))))
            await asyncio.sleep(rng.expovariate(rate))
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    lat.sort()

    def pick(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

    return LoadResult(len(tasks), len(lat), failed, len(pending), pick(0.5), pick(0.95), time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="astrocode-loadgen", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--rate", type=float, default=1.0, help="requests per second (Poisson)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--drain", type=float, default=None, help="seconds to wait for answers after sending (default: all)")
    a = p.parse_args(argv)
    if a.rate <= 0 or a.duration <= 0:
        print("astrocode-loadgen: --rate and --duration must be positive", file=sys.stderr)
        return 2
    if a.drain is not None and a.drain < 0:
        print("astrocode-loadgen: --drain must be >= 0 seconds", file=sys.stderr)
        return 2
    print(json.dumps(asdict(asyncio.run(run(a.url, a.rate, a.duration, a.max_tokens, drain=a.drain)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
