"""Analyzer: evidence, diagnosis engines, incident service."""
