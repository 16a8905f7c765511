"""The ``chipcut`` command line and the loading of user models and input shapes."""
