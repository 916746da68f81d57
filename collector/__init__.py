"""collector package (see its issue; not built yet)."""
