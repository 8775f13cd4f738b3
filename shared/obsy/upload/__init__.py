"""Large files from a site to the centre by HTTP: resumable, with back-pressure (docs/operations.md).

Only metadata crosses the MQTT bridge; the files themselves (allsky pictures, their FITS, stack
previews) go by HTTP to the centre's web service, which keeps them under
``<data_dir>/sites/<site>/<the path under the site's data_dir>``. The protocol
(:mod:`obsy.upload.protocol`) is a plain PUT with ``Content-Range``, resumed from the offset the
centre reports; the site keeps a bounded queue on disk (:mod:`obsy.upload.queue`) that a
restart picks up, and the sender (:mod:`obsy.upload.sender`) backs off while the centre answers
429 or 503.
"""

from obsy.upload.queue import QueueFullError, UploadItem, UploadQueue
from obsy.upload.sender import Uploader, UploadRefusedError

__all__ = ["QueueFullError", "UploadItem", "UploadQueue", "UploadRefusedError", "Uploader"]
