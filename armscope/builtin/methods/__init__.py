"""In-tree method specs; every public module here is registered (see ``armscope.plugins``)."""
