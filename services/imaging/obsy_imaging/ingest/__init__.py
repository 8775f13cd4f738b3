"""Ingest: files from the capture folders (watched) or an archive (imported) into the repository.

- :mod:`.inspect`: is a file a complete, usable frame? (or the reason it is not);
- :mod:`.quarantine`: where unusable files are set aside, with their reason;
- :mod:`.ingestor`: one file through inspection into the repository or the quarantine;
- :mod:`.watcher`: watchdog on the capture folders, taking files once complete;
- :mod:`.archive`: ``obsy-imaging import DIR``.
"""
