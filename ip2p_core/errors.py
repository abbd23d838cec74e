"""One exception type for problems a user can fix, so nodes can show them verbatim."""


class IP2PUserError(ValueError):
    """Raised with a message that names the bad input and says what to do instead."""
