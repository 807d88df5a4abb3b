"""The REST API face: FastAPI routes of a few lines over the service, and what only HTTP needs
(tokens and cookies, cross-site checks, body limits, strict JSON, error shapes)."""
