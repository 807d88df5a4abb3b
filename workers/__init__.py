"""The Celery side: the app, and the one task that runs a RunConfig with a database sink."""
