"""One module per use case (create, destroy, extend, list, status), sharing the reading of history."""
