"""The operator's surface: what runs beside the request path, never on it.

    admin          /admin: exports, summary, budgets (the admin key only)
    dashboard/     /dashboard: server-rendered pages over the ledger
    login_throttle wrong admin keys per client address
    access_log     formats and writes the access lines, in the ledger writer
    loop_lag       the event-loop lag probe
    periods        reporting windows from the command line and query strings

The server hands the admin endpoints and the dashboard what they may use of
the running app (``admin.OperatorView``); nothing here imports the server.
"""
