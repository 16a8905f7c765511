"""User-facing errors: one line that says what is wrong and how to fix it."""


class ChipcutError(Exception):
    """A problem with the user's input (model, shapes, spec, plan).

    The CLI prints the message as one line and exits with code 2; the API
    raises it unchanged. Messages name the node, field, value and unit, and
    end with the fix.
    """


class DoesNotFit(ChipcutError):
    """The model's weights and live activations do not fit in the chips' memory."""


class NoPlanInTime(ChipcutError):
    """No plan that fits the chips' memory turned up within the time limit; none is proven
    impossible (the graph was too wide to search all of it)."""


class ChipcutWarning(UserWarning):
    """Something the user should know that does not stop the work: a cost taken from the
    example's data, a pipeline whose outputs differ from the model's. The CLI prints it as
    one ``chipcut: warning:`` line."""
