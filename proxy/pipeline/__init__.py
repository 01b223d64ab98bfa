"""Everything a model request passes through, in the order it passes.

    POST /v1/chat/completions            chat.ChatHandler
    POST /v1/embeddings, /v1/responses   passthrough.PassthroughHandler (streams: passthrough_stream)
     │
     ├─ admit    policy.EndpointPolicy.admit
     │             auth.Authenticator          the proxy key names the tenant
     │             request                     size limit, JSON, the body's shape, tags
     │             ratelimit.RateLimiter       the key's rpm / tpm
     │             routing_stage.Router        the model exists (models.ModelTable)
     ├─ cache    cache_stage.CacheStageImpl    exact, then semantic; misses coalesce (chat only)
     ├─ plan     routing_stage.Router.plan     score and choose among candidates, or keep the
     │                                         requested model with its tier's (fallbacks)
     │             budget_gate.BudgetGate      reserve the estimate against every budget
     ├─ call     routing_stage.Router.run      retries, fallbacks, circuit breakers, deadline
     │             disconnect                  cancelled when the client leaves
     │             forward.Forwarder           one attempt: the provider's request, sent over
     │                                         upstream.UpstreamClients (aiohttp_upstream)
     ├─ relay    relay                         a stream, chunk by chunk, as it arrives
     ├─ account  accounting.Accountant         cost, baseline, savings; the metrics
     └─ record   ledger_sink.LedgerSink        the ledger record (and access note) to the writer
                 Router.settle                 commit the budget, remember the served model

    exchange     one request's state, written by each stage in turn
    stages       the interfaces the handlers see the stages through
    render       the one error renderer and the x-spendgate-* response headers
    metrics      every metric the proxy exports; the stages record into it
    redis_keys   the name of every key the proxy keeps in Redis
    embeddings   the proxy's own embedding calls (a ``provider:<model>`` semantic embedder)

The stages are built once per app by ``proxy.server.assembly``. Nothing here
imports ``proxy.ops``, ``proxy.server``, ``proxy.demo`` or ``proxy.cli``
(``tests/test_architecture.py``).
"""
