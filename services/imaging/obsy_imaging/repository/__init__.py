"""The frame repository: files in one layout on disk, their headers in the database.

- :mod:`.models`: the tables (``imaging_*``; their own Alembic version table);
- :mod:`.database`: engine and migrations;
- :mod:`.layout`: where a frame goes (night / target / filter; camera / type / settings);
- :mod:`.placement`: putting a file there without ever rewriting or losing it;
- :mod:`.store`: :class:`Repository`, registering frames and quarantined files, and counting them.
"""
