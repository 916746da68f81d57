from __future__ import annotations

import pytest

from hpcmind.settings import SettingsError, load_settings, masked_dump


def test_nested_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCMIND_PROMETHEUS__PORT", "29090")
    assert load_settings().prometheus.port == 29090


def test_out_of_range_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCMIND_ALERTMANAGER__PORT", "70000")
    with pytest.raises(SettingsError, match="HPCMIND_ALERTMANAGER__PORT"):
        load_settings()


def test_masked_dump_keeps_plain_values() -> None:
    dump = masked_dump(load_settings())
    assert dump["analyzer"]["api_token"] == "**********"
    assert dump["analyzer"]["grafana_token"] == ""  # unset secrets show as empty, not as stars
    assert dump["kafka"]["port"] == load_settings().kafka.port
