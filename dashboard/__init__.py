"""The Dash dashboard: runs, launch, run detail and compare pages over the service (``create_dash``)."""
