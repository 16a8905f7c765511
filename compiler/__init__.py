"""The compiler: capture -> lowering -> solver -> plan -> views, with the API and the CLI on top.

Sub-packages are the stages, each importing only those below it (checked in CI):
``capture`` (torch.export), ``lowering`` (units, work and the graph summary), ``solver``
(the exact pipeline cut), ``plan`` (the Plan, its schedule, re-validation and split),
``views`` (report, plots, trace), ``api`` (the public stages) and ``cli``.
"""
