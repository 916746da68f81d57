"""Who may read and write what: bearer tokens for the API and MCP, a signed session cookie for pages."""

from .gate import AccessGate, check_exposure
from .session import Role

__all__ = ["AccessGate", "Role", "check_exposure"]
