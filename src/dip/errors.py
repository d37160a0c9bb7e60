"""The one exception type a user ever sees: its message is printed as a single line."""


class DipError(Exception):
    """A problem with the user's input or settings, explained in one line."""
