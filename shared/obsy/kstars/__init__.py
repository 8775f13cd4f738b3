"""KStars/Ekos from outside: one D-Bus client and the files KStars reads at start.

- :mod:`obsy.kstars.paths`: the service name, object paths, interfaces and status values of
  KStars 3.6 and its Ekos modules;
- :mod:`obsy.kstars.dbus`: the session-bus client (jeepney): method calls, properties,
  introspection and waits, every one with a timeout, every failure a :class:`DBusError` naming
  the object and the method;
- :mod:`obsy.kstars.profile`: an Ekos profile written into KStars' user database;
- :mod:`obsy.kstars.settings`: KStars' settings file (``kstarsrc``) and a headless environment.
- :mod:`obsy.kstars.runs`: the marker that keeps a run folder of Ekos files all night (the
  scheduler marks the runs it writes for a plan request, the MCP the run it has Ekos load).

The MCP drives Ekos with it (``obsy_mcp.ekos``), the local demo prepares KStars with it and the
tests' KStars harness uses it; the imaging service opens its signal connection with it.
"""
