"""Tracking from a researcher's own training loop: ``armscope.init``, its spool, upload and ``armscope sync``."""
