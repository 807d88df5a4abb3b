"""The Dash dashboard: runs, launch, run detail and compare pages, mounted at `/` by the API app."""

from dashboard.mount import mount_dashboard

__all__ = ["mount_dashboard"]
