"""The on-call engineer's pages: the incident list, an incident, a runbook (Jinja2 templates, no CDN)."""
