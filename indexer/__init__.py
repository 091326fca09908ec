"""Clerk's indexer: committee papers -> pages -> chunks -> embeddings -> a published store."""
