"""HTTP API: one router per area, collected in :mod:`backend.api.router`."""
