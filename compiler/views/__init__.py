"""Views of a plan: the text report, plots and the Chrome trace."""
