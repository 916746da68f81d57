"""Grafana provisioning and dashboards (as data)."""
