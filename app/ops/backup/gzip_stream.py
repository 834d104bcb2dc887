"""The dump's gzip container, inflated piece by piece so no backup is ever held in memory."""

import zlib
from collections.abc import Iterator

GZIP_WBITS = 31  # zlib's gzip container: header, CRC32 and length trailer
CHUNK = 1 << 20
# Bounds what one feed of compressed bytes may inflate to while only testing integrity.
INFLATE_LIMIT = 8 * CHUNK


class GzipInflater:
    """Inflates a gzip stream fed in pieces; raises zlib.error where it is corrupt.

    zlib checks each member's CRC32 and length trailer; a stream that just stops is what
    `ended` catches. Concatenated members (what `cat a.gz b.gz` makes) are valid gzip too.
    """

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(GZIP_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self._inflater.eof:
                self._inflater = zlib.decompressobj(GZIP_WBITS)
            yield self._inflater.decompress(data, INFLATE_LIMIT)
            inflater = self._inflater
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail

    @property
    def ended(self) -> bool:
        """Whether the last member fed so far is complete, trailer and all."""
        return self._inflater.eof
