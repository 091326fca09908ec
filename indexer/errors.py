"""Clerk's exceptions: one root and a few kinds that the entry points turn into words."""


class ClerkError(Exception):
    """Root of every error Clerk raises on purpose."""


class ConfigError(ClerkError):
    """A setting is missing or has a value Clerk cannot use."""


class DocumentError(ClerkError):
    """A paper cannot be read (corrupt, encrypted, image-only, empty, unknown type)."""


class MetadataError(ClerkError):
    """A folder's meeting.json is missing fields or is not valid JSON."""


class ReadingError(ClerkError):
    """The worker processes that read papers cannot run, so no paper is to blame."""


class IndexMissingError(ClerkError):
    """No index has been published yet in the data directory."""


class IndexDamagedError(ClerkError):
    """The published index cannot be read (a damaged file); the next index run rebuilds it."""


class IndexIncompatibleError(ClerkError):
    """The published index was built with another model, chunking or format version."""


class LockedError(ClerkError):
    """Another process holds the lock for this job (index build, nightly run)."""


class SyncError(ClerkError):
    """A ModernGov response could not be fetched or understood."""
