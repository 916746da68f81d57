from __future__ import annotations

from analyzer.rca.lm import labels
from analyzer.rca.masking import Masker
from analyzer.rca.openai_engine import parse_reply

LINE = (
    "ssh alice@example.org from 10.3.30.62<44231> token=abcd1234efgh Authorization: Bearer eyJabc.defghijk.lmnopqrs "
    "peer fe80::1ff:fe23:4567:890a, again 10.3.30.62; key ghp_abcdefghijklmnop1234 GPU 0000:3b:00.0 Xid 79 at 12:30:45"
)


def test_mask_hides_secrets_emails_and_addresses() -> None:
    m = Masker()
    out = m.mask(LINE)
    for secret in (
        "alice@example.org",
        "10.3.30.62",
        "abcd1234efgh",
        "eyJabc",
        "fe80::1ff",
        "ghp_abcdefghijklmnop1234",
    ):
        assert secret not in out
    # what the diagnosis needs survives: PCI address, Xid, clock time
    assert "0000:3b:00.0" in out and "Xid 79" in out and "12:30:45" in out


def test_mask_is_reversible_and_stable() -> None:
    m = Masker()
    out = m.mask(LINE)
    assert m.unmask(out) == LINE
    # the same address twice gets the same placeholder, so the model still sees it is one host
    ip = next(p for p, v in m.originals.items() if v == "10.3.30.62")
    assert out.count(ip) == 2


def test_parse_reply_only_returns_valid_ids() -> None:
    ids = labels()
    assert parse_reply('{"root_cause": "nvlink_error", "explanation": "..."}', ids) == "nvlink_error"
    assert parse_reply('{"root_cause": "cosmic_rays"}', ids) == "unknown"
    assert parse_reply("I think it is gpu_oom, maybe host_oom", ids) == "gpu_oom"
    assert parse_reply("no idea", ids) == "unknown"
