"""``spendgate demo``: a simulated provider and a replayed workload."""
