"""Serve the fedmsg bus to browsers over WebSocket (moksha livesocket protocol) with a live page."""
