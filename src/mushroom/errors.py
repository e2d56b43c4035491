"""One exception type for problems the user can fix (bad data, bad config, missing weights).

Entry points catch it and print its message without a traceback: the message itself says what is
wrong and how to fix it.
"""


class MushroomError(Exception):
    """A user-facing error whose message explains the cause and the fix."""
