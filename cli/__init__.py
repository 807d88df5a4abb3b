"""The `armscope` command line: train here, list what can be run, submit to a server, and start
the server or a worker (through the composition root, ``server``)."""
