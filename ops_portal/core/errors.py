from django.core.exceptions import ValidationError


class StateConflict(ValidationError):
    """The object is not in a state that allows the change (already decided, already ended...).

    The API answers 409 with the message; pages show it like any validation error.
    """
