"""The Celery task face: the one task that claims a run, and the runner that trains it and reports to the store."""
