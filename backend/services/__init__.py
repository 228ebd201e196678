"""Services behind the API. Heavy ML work lives in ``training`` (worker side) and ``inference``."""
