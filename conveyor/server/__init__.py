"""The HTTP server: one app (:mod:`.app`), one router module per API, one error handler."""
