"""The shared bottom of chipcut: IR annotations, errors, dtypes, units and file writing.

Everything else may import these modules; they import nothing of chipcut's above them.
"""
