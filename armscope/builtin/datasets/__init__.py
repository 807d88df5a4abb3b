"""In-tree data set specs; every public module here is registered (see ``armscope.plugins``)."""
