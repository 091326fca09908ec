"""Clerk's bot: answering engine, follow-up requests, and the Slack, email and terminal channels."""
