"""The FastAPI edge: thin routers over the broker's services."""
