"""Errors about people's questions and requests; the root and the index errors are in
`indexer.errors`."""

from indexer.errors import ClerkError


class QuestionError(ClerkError):
    """A question is empty, too long or otherwise cannot be asked."""


class RequestError(ClerkError):
    """A follow-up request operation is not allowed (unknown id, illegal state change)."""


class DeliveryError(ClerkError):
    """A message to an asker could not be delivered; it will be retried."""


class SignInError(ClerkError):
    """An officer could not be signed in to the desk, or an account could not be made."""
