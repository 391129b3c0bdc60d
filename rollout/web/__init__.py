"""The console and the HTTP API (``rollout serve``): FastAPI on uvicorn, pages rendered on the
server, live updates by server-sent events. Stateless: everything lives in the state."""
