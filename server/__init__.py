"""The composition root of `armscope serve`: the API with the dashboard beside it on one port, the
reaper, and the embedded worker; also how a worker process is put together. The only code that
imports more than one face."""
