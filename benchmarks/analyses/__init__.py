"""One-off analyses (README.md here): run each from the checkout as `python -m benchmarks.analyses.<name>`."""
