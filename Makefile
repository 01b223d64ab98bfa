PYTHON ?= python

.PHONY: bench bench-smoke bench-soak

# Overhead of the proxy against a direct call, every scenario (a few minutes).
bench:
	$(PYTHON) -m bench

# A tiny run of every scenario (seconds), no targets checked.
bench-smoke:
	$(PYTHON) -m bench --smoke

# Ten minutes of mixed load with faults; not run in CI.
bench-soak:
	$(PYTHON) -m bench --soak --minutes 10
