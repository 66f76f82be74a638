"""The error every modality raises for a record it cannot decode.

Its own module, because the processes that only classify errors (Ray Train's controller, through the launcher's
failure policy) import it and nothing else of the modalities.
"""

from __future__ import annotations


class RecordDecodeError(ValueError):
    """A record's bytes are not a valid sample of its modality; the message names the record."""
