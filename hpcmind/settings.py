"""Effective configuration: one `Settings` object built once at start-up and passed down.

Every value comes from `HPCMIND_*` environment variables (nested with `__`, e.g.
`HPCMIND_ANALYZER__PORT`) or a `.env` file; nothing is read at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

ENV_PREFIX = "HPCMIND_"
NESTED_DELIMITER = "__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalyzerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    api_token: SecretStr = SecretStr("change-me")
    # pages only (incident list and pages, runbooks, API docs), for people who should read but not write; empty: none
    viewer_token: SecretStr = SecretStr("")
    database_url: str = "sqlite:///hpcmind.db"
    prometheus_url: str = "http://127.0.0.1:19090"
    grafana_url: str = "http://127.0.0.1:3000"
    grafana_token: SecretStr = SecretStr("")
    log_bus: Literal["http", "kafka"] = "http"
    # how others reach the analyzer (links in annotations, the collector's log ingest); default http://host:port
    public_url: str = ""
    queue_size: int = Field(1000, ge=1)
    # payloads processed at once: a slow one (a 100k-alert storm, a slow Prometheus) does not hold the next back
    workers: int = Field(2, ge=1, le=32)
    # per incident: each Prometheus query's timeout, all of its queries' budget, and how long a Prometheus that timed
    # out or refused is skipped before one probe query tries again (the breaker)
    prometheus_timeout_s: float = Field(5.0, gt=0, le=120)
    evidence_budget_s: float = Field(15.0, gt=0, le=600)
    prometheus_cooldown_s: float = Field(30.0, ge=0, le=3600)
    # a request body over this is 413 before it is read: 8 MiB holds an Alertmanager group of ~8,000 alerts; raise
    # it for larger groups (or set Alertmanager's webhook max_alerts)
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # this replica's name in the store's leases when several analyzers share one PostgreSQL; default host:port
    # (a replica restarted under the same name takes its unfinished work back at once)
    replica_id: str = Field("", max_length=200)


class LinksSettings(_Section):
    """Where people's browsers reach Grafana, Prometheus and Alertmanager (incident page links). Empty: the
    analyzer's own URLs (fine on one machine; behind compose or a proxy, set what the browser can open)."""

    grafana: str = ""
    prometheus: str = ""
    alertmanager: str = ""


class NotifySettings(_Section):
    """Where incident events go (each through the durable outbox, retried until delivered). Empty: nowhere.
    `webhook_url` receives hpcmind.incident.v1 JSON (analyzer/notify/hpcmind.incident.v1.schema.json), signed with
    `secret` when set; `slack_url` a Slack-compatible incoming-webhook message."""

    webhook_url: str = ""
    slack_url: str = ""
    secret: SecretStr = SecretStr("")
    timeout_s: float = Field(5.0, gt=0, le=60)

    @field_validator("webhook_url", "slack_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class PrometheusSettings(_Section):
    port: int = Field(19090, ge=1, le=65535)
    scrape_interval: str = "5s"


class AlertmanagerSettings(_Section):
    port: int = Field(19093, ge=1, le=65535)


class SlurmSettings(_Section):
    cluster_name: str = "hpcmind"
    node_name: str = "node01"
    fake_gpus: int = Field(4, ge=0, le=16)
    cpus: int = Field(8, ge=1)
    real_memory_mb: int = Field(8000, ge=100)
    restd_socket: str = ""  # empty: <run_dir>/slurm/restd.sock


class NodeExporterSettings(_Section):
    """The stock Prometheus node_exporter (Debian's prometheus-node-exporter) as a local service: host metrics
    (node_vmstat_oom_kill, memory, pressure, filesystems) exactly as a real cluster's nodes export them."""

    port: int = Field(19100, ge=1, le=65535)


class KafkaSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(19092, ge=1, le=65535)
    topic: str = "hpcmind-logs"


class PostgresSettings(_Section):
    port: int = Field(15432, ge=1, le=65535)
    user: str = "hpcmind"
    password: SecretStr = SecretStr("hpcmind")
    database: str = "hpcmind"


class ServicesSettings(_Section):
    # /tmp, not $HOME: PostgreSQL runs as its own user and must be able to reach its data directory.
    run_dir: Path = Path("/tmp/hpcmind-run")
    ready_timeout_s: float = Field(90.0, gt=0)


class CollectorSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(9400, ge=1, le=65535)
    # "unix:/path/restd.sock" or "http://host:6820"; empty: squeue/sinfo --json
    slurm_rest_url: str = ""
    # dcgm-exporter's job-mapping directory (one file per GPU listing job ids); empty: no attribution
    job_mapping_dir: str = ""


class SimulatorSettings(_Section):
    tick_seconds: float = Field(15.0, gt=0)
    seed: int = 0


ARTIFACTS = Path(__file__).resolve().parent.parent / "analyzer" / "rca" / "artifacts"


class ModelSettings(_Section):
    # hpcmind: signatures + encoder head + fine-tuned SmolLM2 combined (the default); the others for comparison
    engine: Literal["hpcmind", "signatures", "finetuned", "base", "encoder", "openai"] = "hpcmind"
    # the committed adapter, encoder head and combination weights (`hpcmind train rca --out` writes them)
    artifacts: Path = ARTIFACTS
    # the dequantised base model is cached here on first start
    cache_dir: Path = Path.home() / ".cache" / "hpcmind"
    # mask secrets, e-mail and IP addresses before evidence goes to a remote (openai) backend
    mask_remote: bool = True
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: SecretStr = SecretStr("")


class McpSettings(_Section):
    # /mcp on the analyzer (streamable HTTP, same bearer token as the API); `hpcmind mcp` serves stdio regardless
    enabled: bool = True
    # write tools (submit_feedback) are listed only when the operator turns this on
    allow_writes: bool = False
    # Host / Origin values accepted besides loopback and the analyzer's own address (DNS-rebinding protection)
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    # query_metrics bounds: the widest range, the most points per series, the most series returned
    max_range_hours: float = Field(24.0, gt=0, le=24 * 31)
    max_points: int = Field(1100, ge=10, le=11000)
    max_series: int = Field(50, ge=1, le=1000)
    # pasted log text accepted by `diagnose`
    max_log_bytes: int = Field(1_000_000, ge=1000)


class ActionsSettings(_Section):
    """Node drain/resume and job requeue through Slurm after a diagnosis (README: "Actions through Slurm").

    off       nothing is proposed or done (the default)
    dry-run   what would be done, and whether the breaker would allow it, is recorded; Slurm is not touched
    approve   actions wait for an operator (API, incident page, MCP write tool) and run when approved
    auto      actions run at once, within the breaker"""

    mode: Literal["off", "dry-run", "approve", "auto"] = "off"
    # the breaker: never more than this share of the cluster's nodes unavailable (drained or down) after a drain,
    # never more than `max_drains` drains in `window_s`, never the last available node of a partition
    max_drain_share: float = Field(0.10, gt=0, le=1)
    max_drains: int = Field(2, ge=0)
    window_s: float = Field(3600.0, gt=0)
    keep_last_node: bool = True
    # Slurm's own CLI (22.05's slurmrestd, openapi v0.0.38, cannot update nodes); empty slurm_conf: Slurm's default
    scontrol: str = "scontrol"
    slurm_conf: str = ""
    timeout_s: float = Field(20.0, gt=0, le=300)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    analyzer: AnalyzerSettings = AnalyzerSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    slurm: SlurmSettings = SlurmSettings()
    kafka: KafkaSettings = KafkaSettings()
    node_exporter: NodeExporterSettings = NodeExporterSettings()
    postgres: PostgresSettings = PostgresSettings()
    services: ServicesSettings = ServicesSettings()
    collector: CollectorSettings = CollectorSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    model: ModelSettings = ModelSettings()
    mcp: McpSettings = McpSettings()
    links: LinksSettings = LinksSettings()
    notify: NotifySettings = NotifySettings()
    actions: ActionsSettings = ActionsSettings()

    @model_validator(mode="after")
    def _derived_addresses(self) -> Settings:
        # one source of truth: unless set, the analyzer queries the local Prometheus wherever its port moved
        if "prometheus_url" not in self.analyzer.model_fields_set:
            self.analyzer.prometheus_url = f"http://127.0.0.1:{self.prometheus.port}"
        self.links.grafana = self.links.grafana or _without_userinfo(self.analyzer.grafana_url)
        self.links.prometheus = self.links.prometheus or _without_userinfo(self.analyzer.prometheus_url)
        self.links.alertmanager = self.links.alertmanager or f"http://127.0.0.1:{self.alertmanager.port}"
        return self


def _without_userinfo(url: str) -> str:
    """A URL fit for a link on a page: never the user:password@ an API URL may carry."""
    return re.sub(r"(?<=://)[^/@]*@", "", url)


class SettingsError(ValueError):
    """Invalid configuration; the message names the environment variable."""


def env_var_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(str(p).upper() for p in loc)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SettingsError(f"{env_var_name(tuple(err['loc']))}: {err['msg']}") from None
    except PydanticSettingsError as exc:  # a whole section given as malformed JSON: HPCMIND_ANALYZER='...'
        field = re.search(r'field "(\w+)"', str(exc))
        name = env_var_name((field[1],)) if field else ENV_PREFIX.rstrip("_")
        raise SettingsError(
            f"{name}: not valid JSON for a settings section (set its fields one by one, e.g. {name}__PORT=8080)"
        ) from None


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with every secret shown as '**********' (or '' when unset)."""

    def walk(model: BaseModel) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                out[name] = walk(value)
            elif isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out

    return walk(settings)
