"""The service layer: the use cases every face calls, and everything stateful around runs.

The store (the only code that speaks SQL), the task queue, publishing and the reaper live here.
Use cases raise the domain errors of ``service.errors``; they know nothing of HTTP, Dash or the
command line, which show those errors each in their own way.
"""
