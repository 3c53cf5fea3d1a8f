"""The customs rules as pure functions over the documents: no I/O, no clock."""
