"""``spendgate demo``: the whole product on a simulated provider, in one process.

    run          the command: simulator, proxy and replayed workload, then the report
    workload     the multi-agent workload and its replay (prompts in ``data/``)
    report       the savings report, read back from the ledger
    simulator/   an OpenAI- and Anthropic-compatible fake provider (``python -m
                 proxy.demo.simulator``), also used by the tests and benchmarks

Nothing the server runs imports this package.
"""
