"""The demonstration mode of the local run (``obsy-local --demo``, ``make demo``).

The whole system against the INDI simulators, at a site where it is astronomical night
now, with a short safe delay, demo targets, an operator account and the weather
simulator's "make it rain" allowed. Nothing of it can reach real hardware or a real
observatory's data: its own INDI server, its own topic prefix, its own SQLite database.

- :mod:`obsy_local.demo.site`: where it is night now;
- :mod:`obsy_local.demo.setup`: the demo configuration (the user's file with the demo's changes);
- :mod:`obsy_local.demo.targets`: targets high in that sky, created through the web API;
- :mod:`obsy_local.demo.kstars`: KStars/Ekos headless, when installed;
- :mod:`obsy_local.demo.retained`: an earlier demo's retained messages deleted before the start;
- :mod:`obsy_local.demo.script`: what the user is told to watch and do.
"""
