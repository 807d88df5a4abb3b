"""The error every data set raises on bad input; torch-free, so the light option models can raise it too."""


class DataError(ValueError):
    """Bad data on disk or bad data options; the message names the file or option."""
