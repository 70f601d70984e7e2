"""The benchmarks: scripts, not part of the installed package (run them from a checkout)."""
