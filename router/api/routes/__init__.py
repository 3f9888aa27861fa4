"""One module per resource: /route, /feedback and /spend."""
