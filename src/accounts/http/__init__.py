"""The HTTP edge: the FastAPI app, REST routers, problem details and middleware."""
