"""The one error type the tool raises for problems a user can act on."""


class VpsError(Exception):
    """A failure with a message meant for the person running the tool."""
