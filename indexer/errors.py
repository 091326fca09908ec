"""Clerk's exceptions: one root and a few kinds that the entry points turn into words."""


class ClerkError(Exception):
    """Root of every error Clerk raises on purpose."""


class ConfigError(ClerkError):
    """A setting is missing or has a value Clerk cannot use."""


class DocumentError(ClerkError):
    """A paper cannot be read (corrupt, encrypted, image-only, empty, unknown type)."""


class MetadataError(ClerkError):
    """A folder's meeting.json is missing fields or is not valid JSON."""


class IndexMissingError(ClerkError):
    """No index has been published yet in the data directory."""


class IndexIncompatibleError(ClerkError):
    """The published index was built with another model, chunking or format version."""


class QuestionError(ClerkError):
    """A question is empty, too long or otherwise cannot be asked."""


class LockedError(ClerkError):
    """Another process holds the lock for this job (index build, nightly run)."""


class RequestError(ClerkError):
    """A follow-up request operation is not allowed (unknown id, illegal state change)."""


class DeliveryError(ClerkError):
    """A message to an asker could not be delivered; it will be retried."""


class SyncError(ClerkError):
    """A ModernGov response could not be fetched or understood."""
