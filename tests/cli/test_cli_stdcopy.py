"""The stdcopy demultiplexer."""

from __future__ import annotations

import io

from dockyard.cli.stdcopy import FrameDecoder, demux_to, encode_frame


def test_header_layout() -> None:
    assert encode_frame(1, b"tick\n") == bytes.fromhex("0100000000000005") + b"tick\n"


def test_decoder_handles_every_split_point() -> None:
    stream = encode_frame(2, b"oops\n") + encode_frame(1, b"hello\n") + encode_frame(1, b"")
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert frames == [(2, b"oops\n"), (1, b"hello\n"), (1, b"")]
        assert decoder.pending == 0


def test_decoder_byte_by_byte_and_large_frame() -> None:
    payload = bytes(range(256)) * 400
    decoder = FrameDecoder()
    frames = []
    for byte in encode_frame(1, payload):
        frames += decoder.feed(bytes([byte]))
    assert frames == [(1, payload)]


def test_incomplete_frame_stays_pending() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(1, b"abcdef")[:-2]) == []
    assert decoder.pending == 12


def test_demux_to_routes_streams() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    chunks = [encode_frame(1, b"a") + encode_frame(2, b"b")[:3], encode_frame(2, b"b")[3:], encode_frame(3, b"sys")]
    demux_to(chunks, out, err, tty=False)
    assert out.getvalue() == b"a"
    assert err.getvalue() == b"bsys"


def test_demux_to_tty_is_raw() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    demux_to([b"\x00tty-out\r\n", b"more"], out, err, tty=True)
    assert out.getvalue() == b"\x00tty-out\r\nmore"
    assert err.getvalue() == b""
