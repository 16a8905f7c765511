"""The Plan: its serializable value, the schedule that fills it, re-validation and the split."""
