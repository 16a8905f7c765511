"""Lowering: an annotated graph -> partition units, their work, and the graph summary a plan keeps."""
