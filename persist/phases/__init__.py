"""Phase wiring: resolve config, fetch upstream artifacts by run id, call the library, log results."""
