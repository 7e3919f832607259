"""HTTP adapter: FastAPI app factory, routes, dependencies and problem+json errors."""
