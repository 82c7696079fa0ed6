"""optisync's desktop demo: Qt windows over the Qt-free core, link and server.

Widgets only show things. Each device window talks to one
:class:`~app.ui.bridge.DeviceBridge`, and the server window to one
:class:`~app.ui.server_bridge.ServerBridge`; the bridges are the only Qt code
that touches a session or the server.
"""

__all__: list[str] = []
