"""The HTTP server: the app, its routes, the lifespan that owns the clients."""
