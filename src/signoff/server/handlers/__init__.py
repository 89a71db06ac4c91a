"""The API's handlers, grouped by resource (the table is :mod:`signoff.server.routes`)."""
