"""Outgoing incident events: the hpcmind.incident.v1 webhook and a Slack message, through a durable outbox."""
