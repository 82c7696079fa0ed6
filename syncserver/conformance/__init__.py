"""The optisync protocol's conformance kit: ``python -m syncserver.conformance URL``.

It checks a running server against ``syncserver/PROTOCOL.md`` over raw
websocket JSON, using only the ``websockets`` client and ``json``: it never
imports the server, so it checks any implementation. ``--help`` explains
the options; each check is one rule of the document (``--list``).

Modules: ``peer`` (one raw connection), ``registry`` (the check list),
``messages``, ``errors``, ``ordering``, ``feed``, ``servers`` and ``spaces``
(the checks),
``launcher`` (servers the kit starts), ``runner`` and ``__main__``.
``schema`` (not used by the checks) writes ``syncserver/protocol.schema.json``.
"""

__all__: list[str] = []
