"""Relay every fedmsg bus message, frames unchanged, to a public ZeroMQ PUB endpoint."""
