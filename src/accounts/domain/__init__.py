"""Pure domain rules and values: no I/O, no frameworks."""
