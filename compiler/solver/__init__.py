"""The solver: the partitioning problem and its cost semantics, the exact engines, and the driver."""
