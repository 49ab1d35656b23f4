"""Small programs the multi-process registry test runs as separate OS processes."""
