"""A plain-format dump read line by line as psql reads it, refusing psql's meta-commands.

psql runs a line that starts with a backslash as a meta-command, and `\\!` runs a shell
command, so a rewritten dump could run code as whoever restores it. pg_dump writes lines
starting with a backslash only as COPY data (where a backslash is an escape, and the line
`\\.` ends the data) and, since 15.14, as `\\restrict <key>` ... `\\unrestrict <key>` around
the whole dump. Any other one is refused.

A line scan cannot see everything psql would run: a meta-command after SQL on the same line,
or one in a region the scan takes for COPY data but psql does not (a `COPY` line inside a
string). restore.py closes that gap by running psql restricted, under a key of its own.
"""

import re

from app.ops.backup.errors import BackupError

# psql ends COPY data only at a line that is exactly this (its handleCopyIn).
COPY_END = (b"\\.\n", b"\\.\r\n")
# pg_dump's guard lines, with its alphanumeric key. Blanked as they pass: restore.py puts
# psql in restricted mode itself, and psql refuses a second `\restrict`.
PG_DUMP_GUARD = re.compile(rb"\\(?:restrict|unrestrict) [A-Za-z0-9]+\n")
COPY_HEADER = (b"COPY ", b" FROM stdin;\n")
# A SQL line is held whole up to this long; a longer one (which cannot be pg_dump's guard)
# is passed on as it streams, so no line is ever held whole in memory.
LINE_LIMIT = 64 * 1024
PREVIEW_CHARS = 80


class UnsafeDump(BackupError):
    """The dump holds something psql would run besides SQL; nothing of it may reach psql."""


class DumpScanner:
    """Follows a dump fed in pieces; passes on what psql may read, pg_dump's guard blanked.

    COPY data starts after a line `COPY ... FROM stdin;` and ends at a line `\\.`. Outside
    it, a line starting with a backslash other than pg_dump's guard raises UnsafeDump, and
    none of that line is passed on. Line numbers keep counting the dump's own lines.
    """

    def __init__(self) -> None:
        self.line_number = 1  # of the line being read
        self._in_copy = False
        self._held = b""  # the current line so far, held back until it is judged
        self._streaming = False  # the current line was judged harmless and is passing on
        self._copy_header = False  # (a streaming SQL line) it starts like a COPY line
        self._tail = b""  # (a streaming SQL line) its last bytes so far

    def feed(self, data: bytes) -> bytes:
        """The part of the dump psql may now read, up to the last line judged so far."""
        out: list[bytes] = []
        start = 0
        if self._held or self._streaming:
            end = data.find(b"\n")
            start = len(data) if end == -1 else end + 1
            self._continue_line(data[:start], out)
        while start < len(data):
            if self._in_copy:
                start = self._copy_data(data, start, out)
            else:
                start = self._sql_line(data, start, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """The rest once the dump has ended: an unterminated last line, judged like any."""
        out: list[bytes] = []
        if self._held and not self._in_copy:
            self._judge_sql_line(self._held, out)
        elif self._held:
            out.append(self._held)
        self._held, self._streaming = b"", False
        if self._in_copy:
            # The COMMIT restore.py sends after the dump would be read as COPY data.
            raise UnsafeDump(
                f"the dump ends inside COPY data (no line \\. after line {self.line_number})"
            )
        return b"".join(out)

    def _sql_line(self, data: bytes, start: int, out: list[bytes]) -> int:
        end = data.find(b"\n", start)
        if end == -1:
            self._continue_line(data[start:], out)
            return len(data)
        self._judge_sql_line(data[start : end + 1], out)
        return end + 1

    def _copy_data(self, data: bytes, start: int, out: list[bytes]) -> int:
        """Pass on COPY data from `start` (a line start) up to and with its `\\.` line."""
        position = start
        while position != -1:
            if data.startswith(COPY_END, position):
                stop = data.index(b"\n", position) + 1
                self._pass_on_lines(data, start, stop, out)
                self._in_copy = False
                return stop
            found = data.find(b"\n\\.", position)
            position = -1 if found == -1 else found + 1
        stop = max(start, data.rfind(b"\n", start) + 1)
        self._pass_on_lines(data, start, stop, out)
        if stop < len(data):
            self._continue_line(data[stop:], out)  # may be the start of the `\.` line
        return len(data)

    def _pass_on_lines(self, data: bytes, start: int, stop: int, out: list[bytes]) -> None:
        out.append(data[start:stop])
        self.line_number += data.count(b"\n", start, stop)

    def _continue_line(self, piece: bytes, out: list[bytes]) -> None:
        """Add `piece`, the current line's next bytes (to its end, if it has one)."""
        complete = piece.endswith(b"\n")
        if self._streaming:
            out.append(piece)
            if self._copy_header:
                keep = len(COPY_HEADER[1])
                self._tail = (self._tail + piece[-keep:])[-keep:]
            if complete:
                if self._copy_header and self._tail == COPY_HEADER[1] and not self._in_copy:
                    self._in_copy = True
                self._end_streaming()
            return
        line = self._held + piece
        self._held = b""
        if complete and self._in_copy:
            self._in_copy = line not in COPY_END
            out.append(line)
            self.line_number += 1
        elif complete:
            self._judge_sql_line(line, out)
        elif self._in_copy and any(end.startswith(line) for end in COPY_END):
            self._held = line
        elif self._in_copy:
            self._start_streaming(line, out)
        elif len(line) <= LINE_LIMIT:
            self._held = line
        else:
            self._refuse_meta_command(line)
            self._start_streaming(line, out)

    def _judge_sql_line(self, line: bytes, out: list[bytes]) -> None:
        if PG_DUMP_GUARD.fullmatch(line):
            out.append(b"\n")
        else:
            self._refuse_meta_command(line)
            out.append(line)
            self._in_copy = line.startswith(COPY_HEADER[0]) and line.endswith(COPY_HEADER[1])
        self.line_number += 1

    def _refuse_meta_command(self, line: bytes) -> None:
        if line.startswith(b"\\"):
            raise UnsafeDump(
                f"line {self.line_number} of the dump is a psql meta-command "
                f"({_preview(line)}); pg_dump writes none but \\restrict and \\unrestrict"
            )

    def _start_streaming(self, line: bytes, out: list[bytes]) -> None:
        out.append(line)
        self._streaming = True
        self._copy_header = not self._in_copy and line.startswith(COPY_HEADER[0])
        self._tail = line[-len(COPY_HEADER[1]) :]

    def _end_streaming(self) -> None:
        self._streaming, self._copy_header, self._tail = False, False, b""
        self.line_number += 1


def _preview(line: bytes) -> str:
    """The line's start as an operator may safely see it: no control characters."""
    text = line[: PREVIEW_CHARS + 1].decode("utf-8", "replace").rstrip("\r\n")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text[:PREVIEW_CHARS] + "..." if len(text) > PREVIEW_CHARS else text
