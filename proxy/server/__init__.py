"""The HTTP server: the app, its routes, and the lifespan that owns the clients.

    server        ``spendgate serve`` under uvicorn: one process or ``--workers N``
    app           the ASGI app; its lifespan builds the runtime and closes it
    routes        which path is served by what (the model endpoints, health, metrics)
    openapi       the OpenAPI document's additions
    runtime       everything one app holds: upstream clients, handlers, stages, probes
    assembly      builds the pipeline's stages from the settings (start-up only)
    cache_setup   the cache stage's store, semantic index and Redis clients
    ledger_setup  the ledger, its writer and what they report
    ledger_process, ledger_worker   the writer process, one per worker
    defaults      facts about a config that need the catalog or the ledger

The request path (``proxy.pipeline``) never imports the server; the server
wires it and hands the operator's surface (``proxy.ops``) its view of the app.
"""
