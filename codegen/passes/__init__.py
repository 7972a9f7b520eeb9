"""IR passes that restructure a lowered graph (each a function Graph -> Graph, testable alone)."""
