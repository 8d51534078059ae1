"""The HTTP edge: app factory, request/response models, routes, and the one error mapping."""
