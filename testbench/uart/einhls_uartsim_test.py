"""cocotb test: the generated UART host driver, unchanged, against the Verilated board top.

The board top (OUT/ecp5/<top>_board.v: UART bridge + accelerator) runs under Verilator; its
serial pins are driven and read by cocotbext-uart.  The host driver (OUT/driver/) runs as its own
process, ``python -m driver --port socket://127.0.0.1:PORT``: pyserial's socket URL is the serial
line, and this test carries the bytes between that socket and the UART pins, as the FTDI chip
would.  It can flip a bit of chosen bytes on the way (a noisy line): byte k of everything the host
sent (``corrupt_to_fpga``), of everything the FPGA sent (``corrupt_to_host``), and lose bytes the
host sent (``drop_to_fpga``).

Configuration: JSON in EINHLS_UARTSIM (see codegen/verify/uartsim.py); a summary is written to its
"results" path.  The comparison with the reference happens outside, on the outputs the driver saved.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.uart import UartSink, UartSource

CORRUPTION = 0x10     # the bit flipped in a corrupted byte


def _flip(data: bytes, first_index: int, positions: set[int],
          dropped: frozenset[int] = frozenset()) -> tuple[bytes, list[int]]:
    """``data`` (bytes first_index... of one direction) with the bytes at ``positions`` corrupted
    and those at ``dropped`` left out; the positions hit."""
    out = bytearray()
    hit = []
    for i, byte in enumerate(data):
        if first_index + i in dropped:
            hit.append(first_index + i)
            continue
        if first_index + i in positions:
            byte ^= CORRUPTION
            hit.append(first_index + i)
        out.append(byte)
    return bytes(out), hit


@cocotb.test()
async def driver_over_uart(dut):
    cfg = json.loads(os.environ["EINHLS_UARTSIM"])
    clk = getattr(dut, cfg["clock_port"])
    rxd = getattr(dut, cfg["rx_port"])
    txd = getattr(dut, cfg["tx_port"])
    rxd.value = 1
    cocotb.start_soon(Clock(clk, cfg["clock_ns"], unit="ns").start())
    baud = 1e9 / (cfg["clock_ns"] * cfg["clks_per_bit"])
    source, sink = UartSource(rxd, baud=baud), UartSink(txd, baud=baud)
    for pin in (rxd, txd):   # one log line per byte otherwise
        logging.getLogger(f"cocotb.{pin._path}").setLevel(logging.WARNING)
    await ClockCycles(clk, 32)   # the board top's power-on reset

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    with open(cfg["driver_log"], "w") as log:
        proc = subprocess.Popen([cfg["python"], "-m", "driver", "--port", f"socket://127.0.0.1:{port}",
                                 "--vectors", cfg["vectors"], "--save", cfg["outputs"], "--frames", "0",
                                 "--timeout", str(cfg["timeout_s"])],
                                cwd=cfg["project"], stdout=log, stderr=subprocess.STDOUT)
        server.settimeout(60.0)
        conn, _ = server.accept()
        conn.setblocking(False)
        to_fpga = to_host = 0
        hits_fpga, hits_host = [], []
        corrupt_fpga, corrupt_host = set(cfg["corrupt_to_fpga"]), set(cfg["corrupt_to_host"])
        dropped = frozenset(cfg["drop_to_fpga"])
        deadline = time.monotonic() + cfg["wall_limit_s"]
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
                closed = data == b""
            except BlockingIOError:
                data = b""
            if data:
                sent, hit = _flip(data, to_fpga, corrupt_fpga, dropped)
                hits_fpga += hit
                to_fpga += len(data)
                await source.write(sent)
            if not sink.empty():
                back, hit = _flip(bytes(sink.read_nowait()), to_host, corrupt_host)
                hits_host += hit
                to_host += len(back)
                try:
                    conn.sendall(back)
                except OSError:
                    closed = True
            if proc.poll() is not None and not data:
                break
            await ClockCycles(clk, cfg["poll_cycles"])
        conn.close()
        server.close()
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
    summary = {"driver_exit": code, "bytes_to_fpga": to_fpga, "bytes_to_host": to_host,
               "corrupted_to_fpga": hits_fpga, "corrupted_to_host": hits_host,
               "timed_out": time.monotonic() >= deadline}
    with open(cfg["results"], "w") as fh:
        json.dump(summary, fh)
