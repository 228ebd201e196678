"""One module per metric; each measures a live process tree or files on disk and returns numbers."""
