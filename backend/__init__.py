"""The service side: settings, the SQL store, and the FastAPI REST API."""
