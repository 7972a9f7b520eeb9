"""The typed intermediate representation: fixed-point types, ops, graph, integer reference."""
