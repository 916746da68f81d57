"""The template corpus: every row valid and sourced, bundles composed deterministically, no real incident inside."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from analyzer.corpus.catalog import PLACEHOLDER, provenance, sources, templates
from analyzer.corpus.compose import Pools, compose, compose_one, template_split
from analyzer.corpus.fills import Fill
from hpcmind.contract import parse_bundle
from hpcmind.taxonomy import UNKNOWN, root_cause_ids

REPO = Path(__file__).resolve().parents[2]


def test_every_template_has_a_resolvable_source_with_a_commit_or_a_document() -> None:
    for t in templates():
        p = provenance(t)
        key = t.src.split(":", 1)[0]
        s = sources()[key]
        assert ("repo" in s and re.fullmatch(r"[0-9a-f]{40}", s["commit"])) or "doc" in s, t.id
        assert s["checked"] in ("grep", "index", "docs"), key
        assert p, t.id


def test_every_placeholder_has_a_filler_and_filling_leaves_none() -> None:
    f = Fill.new(random.Random(3))
    for t in templates():
        out = f.render(t.text)
        assert not PLACEHOLDER.search(out), (t.id, out)


def test_every_root_cause_can_be_composed_for_training_and_most_are_held_out_too() -> None:
    train, val = Pools.for_split("train"), Pools.for_split("val")
    for c in root_cause_ids():
        assert c in train.roots or c in train.alone, c
    held_out = [c for c in root_cause_ids() if c in val.roots or c in val.alone]
    assert len(held_out) >= 14, held_out


def test_split_holds_out_wordings() -> None:
    splits = Counter(template_split(t) for t in templates() if t.role != "healthy")
    assert splits["val"] > 0.1 * sum(splits.values())
    train_ids = {t.id for ts in Pools.for_split("train").roots.values() for t in ts}
    val_ids = {t.id for ts in Pools.for_split("val").roots.values() for t in ts}
    assert train_ids and val_ids and not train_ids & val_ids


def test_compose_is_deterministic_and_valid_bundles() -> None:
    a = list(compose("train", 2, 4, seed=7))
    b = list(compose("train", 2, 4, seed=7))
    assert a == b
    assert Counter(e["root_cause"] for e in a)[UNKNOWN] == 4
    for e in a:
        parse_bundle(e["bundle"])  # the contract accepts every composed bundle
        assert e["bundle"]["logs"]


def test_healthy_bundles_hold_only_healthy_lines() -> None:
    pools = Pools.for_split("train")
    rng = random.Random(5)
    for _ in range(30):
        b = compose_one(rng, pools, UNKNOWN, "healthy")
        assert 2 <= len(b["logs"]) <= 24
        for line in b["logs"]:
            assert not re.search(r"NCCL WARN|OutOfMemoryError|Xid \(", line["line"]), line


def test_a_cascade_repeats_symptoms_around_its_root() -> None:
    pools = Pools.for_split("train")
    rng = random.Random(11)
    b = compose_one(rng, pools, "network_fabric", "cascade")
    assert len(b["logs"]) >= 4


@pytest.mark.parametrize("name", ["real-dev.jsonl", "real-dev-2.jsonl"])
def test_no_template_is_taken_from_the_real_evaluation_sets(name: str) -> None:
    """Real incidents are for evaluation only. An emitter's constant message (`[Errno 122] Disk quota exceeded`)
    reads the same everywhere, but an incident's own values do not: no real line carrying three or more numbers
    (sizes, ids, ranks, addresses) appears in a template as it is."""
    texts = [t.text for t in templates()]
    checked = 0
    for raw in (REPO / "bench" / "data" / name).read_text().splitlines():
        d = json.loads(raw)
        for entry in d["bundle"].get("logs", []):
            line = entry["line"].strip()
            if len(re.findall(r"\d+", line)) < 3:
                continue
            checked += 1
            for t in texts:
                assert line not in t, (d["id"], line)
    assert checked > 20


def test_the_data_card_is_current() -> None:
    from analyzer.corpus.card import card

    want = card()
    assert (REPO / "docs" / "rca-corpus.md").read_text() == want, "regenerate docs/rca-corpus.md from card()"
