"""In-tree encoder specs; every public module here is registered (see ``armscope.plugins``)."""
