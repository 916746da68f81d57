"""HPCMind: shared contract types, settings and the `hpcmind` command line."""

__version__ = "0.1.0"
