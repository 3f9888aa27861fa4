"""The HTTP layer: the FastAPI app, its dependencies, one error map, one file per resource.

`app` builds the app and its lifespan, `middleware` holds the request-wide limits (time),
`openapi` documents the serving config's tiers and limits, `routes/` has the handlers.
"""
