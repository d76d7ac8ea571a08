"""The python-threatexchange (pytx) extension: our PDQ signal type, index and the StopNCII
exchange that honours withdrawals. Wraps ``index`` and ``bank``; nothing in the library
imports it."""
