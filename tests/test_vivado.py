"""The board flow's Vivado scripts and Makefile, checked without Vivado.

Every script runs under plain ``tclsh`` with a prelude that stubs the Xilinx commands: the stubs
record each call (and whether the files it names exist) and emulate just enough of Vivado's
behaviour (it writes the bitstream, the .hwh and the packaged IP where Vivado would) for the
scripts' own Tcl (paths, globbing, checks, copying into deploy/) to run for real.  The Makefile
runs with stand-in `vivado` / `vitis_hls` commands that call the same stubbed tclsh.
Nothing here proves Vivado accepts the commands; docs/board_flow.md says what was not run.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from codegen.emit.vivado import (BLOCK_DESIGN_SCRIPT, BUILD_SCRIPT, DMA_BASE, DMA_INSTANCE, PACKAGE_SCRIPT,
                                 VIVADO_DIR, adapters_file, dma_frame, dma_top_file, emit_vivado, plan_board)
from codegen.examples import chain_graph, linear_graph, manual_design
from codegen.ir.types import QType
from codegen.schedule.boards import known_boards
from codegen.schedule.design import Design

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")

SEP = "\x1f"   # separates the words of one recorded call

# Stubs of the Vivado commands the einhls scripts use.  Each call appends one line to $::stub_log:
# the words separated by \x1f, then (after \x1e) the existing files among the words.
PRELUDE = r"""
set stub_log [lindex $argv 0]
set stub_script [lindex $argv 1]
set stub_boards [split [lindex $argv 2] ,]
set stub_wns [lindex $argv 3]
set stub_missing_pins {einhls_accel/ap_start}
set stub_top ""
set stub_project_dir ""
set stub_project_name ""
set stub_bd ""
set stub_clock ""

proc stub_record {name words} {
    set existing {}
    foreach word $words {
        # a word may be a Tcl list of files (add_files $sources)
        if {[catch {llength $word}]} { continue }
        foreach item $word {
            if {[string match /* $item] && [file exists $item]} { lappend existing $item }
        }
    }
    set fh [open $::stub_log a]
    puts $fh "[join [list $name {*}$words] \x1f]\x1e[join $existing \x1f]"
    close $fh
}
proc stub_last_operand {words} {
    set operands {}
    foreach w $words { if {![string match -* $w]} { lappend operands $w } }
    return [lindex $operands end]
}

set stub_plain {current_project update_ip_catalog add_files update_compile_order apply_bd_automation
    make_bd_intf_pins_external connect_bd_intf_net connect_bd_net assign_bd_address
    regenerate_bd_layout validate_bd_design save_bd_design current_fileset wait_on_run open_run
    report_utilization report_timing_summary close_project
    ipx::associate_bus_interfaces ipx::create_xgui_files ipx::update_checksums ipx::check_integrity
    ipx::save_core}
namespace eval ipx {}
foreach cmd $stub_plain {
    proc $cmd args [format {stub_record %s $args; return ""} $cmd]
}
foreach cmd {get_bd_cells get_bd_intf_pins get_bd_addr_spaces get_bd_addr_segs get_runs} {
    proc $cmd args [format {stub_record %s $args; return [stub_last_operand $args]} $cmd]
}
proc get_bd_pins args {
    stub_record get_bd_pins $args
    set pins [stub_last_operand $args]
    set found {}
    foreach p $pins { if {$p ni $::stub_missing_pins} { lappend found $p } }
    return $found
}
proc create_bd_cell args { stub_record create_bd_cell $args; return [stub_last_operand $args] }
proc create_bd_design args { stub_record create_bd_design $args; set ::stub_bd [lindex $args 0] }
proc get_board_parts args {
    stub_record get_board_parts $args
    set pattern [stub_last_operand $args]
    set found {}
    foreach b $::stub_boards { if {[string match $pattern $b]} { lappend found $b } }
    return $found
}
proc get_ipdefs args {
    stub_record get_ipdefs $args
    set i [lsearch $args -filter]
    regexp {NAME == (\S+)} [lindex $args [expr {$i + 1}]] -> name
    return [list "stub.vendor:stub:$name:1.0"]
}
proc create_project args {
    stub_record create_project $args
    set operands {}
    foreach w $args { if {![string match -* $w]} { lappend operands $w } }
    set ::stub_project_name [lindex $operands 0]
    set ::stub_project_dir [lindex $operands 1]
    file mkdir $::stub_project_dir
}
proc set_property args {
    stub_record set_property $args
    if {[lindex $args 0] eq "top"} { set ::stub_top [lindex $args 1] }
    if {[lindex $args 0] eq "-dict"} {
        foreach {key value} [lindex $args 1] {
            if {[string match *FREQMHZ $key]} { set ::stub_clock $value }
        }
    }
}
proc get_property args {
    stub_record get_property $args
    set name [lindex $args 0]
    set obj [lindex $args 1]
    switch -glob -- $name {
        PROGRESS { return "100%" }
        DIRECTORY { return [file join $::stub_project_dir $::stub_project_name.runs $obj] }
        STATS.WNS { return $::stub_wns }
        *ACT*FREQMHZ { return $::stub_clock }
        default { return "" }
    }
}
proc get_files args { stub_record get_files $args; return [stub_last_operand $args] }
proc generate_target args {
    stub_record generate_target $args
    # Vivado 2020.2+ writes the hardware handoff under <project>.gen/
    set dir [file join $::stub_project_dir $::stub_project_name.gen sources_1 bd $::stub_bd hw_handoff]
    file mkdir $dir
    set fh [open [file join $dir $::stub_bd.hwh] w]; puts $fh "<EDKSYSTEM/>"; close $fh
}
proc make_wrapper args {
    stub_record make_wrapper $args
    set dir [file join $::stub_project_dir $::stub_project_name.gen sources_1 bd $::stub_bd hdl]
    file mkdir $dir
    set path [file join $dir ${::stub_bd}_wrapper.v]
    set fh [open $path w]; puts $fh "// wrapper"; close $fh
    return $path
}
proc launch_runs args {
    stub_record launch_runs $args
    set dir [file join $::stub_project_dir $::stub_project_name.runs impl_1]
    file mkdir $dir
    set fh [open [file join $dir $::stub_top.bit] w]; puts $fh "bitstream"; close $fh
}
proc version args { stub_record version $args; return "2024.2" }
proc ipx::package_project args {
    stub_record ipx::package_project $args
    set dir [lindex $args [expr {[lsearch $args -root_dir] + 1}]]
    file mkdir $dir
    set fh [open [file join $dir component.xml] w]; puts $fh "<component/>"; close $fh
}
proc ipx::current_core args { stub_record ipx::current_core $args; return core }
proc ipx::get_bus_interfaces args { stub_record ipx::get_bus_interfaces $args; return [stub_last_operand [lrange $args 0 end-2]] }
proc ipx::get_bus_parameters args { stub_record ipx::get_bus_parameters $args; return FREQ_HZ }
proc ipx::add_bus_parameter args { stub_record ipx::add_bus_parameter $args; return FREQ_HZ }

rename source stub_tcl_source
proc source {path} {
    stub_record source [list [file normalize $path]]
    uplevel 1 [list stub_tcl_source $path]
}

set argv [lrange $argv 4 end]
set argc [llength $argv]
stub_tcl_source $stub_script
"""


class Calls(list):
    """Recorded calls: (words, existing files)."""

    def named(self, name: str) -> list[list[str]]:
        return [words for words, _ in self if words[0] == name]

    def files(self, name: str) -> list[str]:
        """The file operands of every call of ``name`` (list-valued words split)."""
        return [f for words in self.named(name) for w in words[1:] if not w.startswith("-") for f in w.split()]

    def dict_values(self, key: str) -> list[str]:
        """Values given to ``set_property -dict`` for one property."""
        found = []
        for words in self.named("set_property"):
            if words[1] == "-dict":
                pairs = words[2].split()
                found += [pairs[i + 1] for i in range(0, len(pairs) - 1, 2) if pairs[i] == key]
        return found


def run_stubbed(script: Path, args: list[str], cwd: Path, boards: list[str], wns: str = "0.25",
                check: bool = True) -> tuple[Calls, subprocess.CompletedProcess]:
    prelude = cwd / "vivado_stubs.tcl"
    prelude.write_text(PRELUDE)
    log = cwd / "calls.log"
    log.write_text("")
    done = subprocess.run(["tclsh", str(prelude), str(log), str(script), ",".join(boards), wns, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    calls = Calls()
    for line in log.read_text().split("\n"):  # not splitlines: it splits at \x1e too
        if not line:
            continue
        words, _, existing = line.partition("\x1e")
        calls.append((words.split(SEP), [e for e in existing.split(SEP) if e]))
    return calls, done


DESIGNS = {
    "pynq-z2": lambda: manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                                     "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)}),
    "kv260": lambda: manual_design(linear_graph(13, 7, QType(True, 8, 2.0 ** -4), 4, QType(True, 5, 0.5)),
                                   {"layer0": (4, 2, 3, 2)}, board="kv260"),
}


def fake_rtl(out: Path, design: Design) -> None:
    """rtl/ as the Verilog back end leaves it (contents do not matter to the Tcl)."""
    rtl = out / "rtl"
    rtl.mkdir(parents=True, exist_ok=True)
    (rtl / f"{design.top_name}.v").write_text(f"module {design.top_name}; endmodule\n")
    (rtl / "einhls_relu.v").write_text("module einhls_relu; endmodule\n")
    (rtl / "layer0_weights.mem").write_text("00\n")


def fake_hls_export(out: Path, design: Design) -> Path:
    """What `vitis_hls -f run_hls.tcl` leaves: <project>/<solution>/impl/ip/component.xml."""
    ip = out / "hls" / f"{design.top_name}_prj" / "solution1" / "impl" / "ip"
    ip.mkdir(parents=True, exist_ok=True)
    (ip / "component.xml").write_text("<component/>\n")
    return ip


def emitted(tmp_path: Path, board: str) -> tuple[Path, Design]:
    design = DESIGNS[board]()
    out = tmp_path / "out"
    emit_vivado(design, out)
    fake_rtl(out, design)
    return out, design


def inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


@pytest.mark.parametrize("board", DESIGNS)
def test_hls_variant_flow(board: str, tmp_path: Path) -> None:
    out, design = emitted(tmp_path, board)
    b = design.board
    ip = fake_hls_export(out, design)
    elsewhere = tmp_path / "elsewhere"     # the script must not depend on the working directory
    elsewhere.mkdir()
    calls, _ = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["hls", "3"], elsewhere, [b.board_part])

    project = calls.named("create_project")[0]
    assert project[project.index("-part") + 1] == b.part
    assert inside(project[2], out / "build")
    props = {w[1]: w[2] for w in calls.named("set_property") if not w[1].startswith("-")}
    assert props["board_part"] == b.board_part
    assert Path(props["ip_repo_paths"]).resolve() == ip.resolve()
    assert props["top"] == "einhls_bd_wrapper"
    # the design clock reaches the PS clock generator
    key = ("CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ" if b.family == "zynq7000"
           else "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ")
    assert calls.dict_values(key) == [f"{design.clock_mhz:g}"]
    assert b.clock_mhz == design.clock_mhz
    cells = {words[-1]: words for words in calls.named("create_bd_cell")}
    ps_name = "processing_system7_0" if b.ps == "processing_system7" else "zynq_ultra_ps_e_0"
    assert cells[ps_name][cells[ps_name].index("-vlnv") + 1] == f"stub.vendor:stub:{b.ps}:1.0"
    assert "stub.vendor:stub:axi_dma:1.0" in cells[DMA_INSTANCE]
    assert cells["einhls_dma_in"][:4] == ["create_bd_cell", "-type", "module", "-reference"]
    assert cells["einhls_dma_in"][4] == f"{design.top_name}_dma_in"
    assert cells["einhls_dma_out"][4] == f"{design.top_name}_dma_out"
    assert cells["einhls_accel"][cells["einhls_accel"].index("-vlnv") + 1] == f"stub.vendor:stub:{design.top_name}:1.0"
    assert "einhls_ap_start" not in cells          # ap_ctrl_none: nothing to tie off
    assert calls.dict_values("CONFIG.c_sg_length_width") == ["26"]
    assert calls.dict_values("CONFIG.c_include_sg") == ["0"]
    # the stream path DMA -> adapters -> accelerator -> adapters -> DMA
    nets = [words[1:] for words in calls.named("connect_bd_intf_net")]
    assert [f"{DMA_INSTANCE}/M_AXIS_MM2S", "einhls_dma_in/s_axis"] in nets
    assert ["einhls_dma_in/m_axis", "einhls_accel/s_axis"] in nets
    assert ["einhls_accel/m_axis", "einhls_dma_out/s_axis"] in nets
    assert ["einhls_dma_out/m_axis", f"{DMA_INSTANCE}/S_AXIS_S2MM"] in nets
    # DMA registers where PYNQ expects them
    address = calls.named("assign_bd_address")[0]
    assert address[address.index("-offset") + 1] == f"0x{DMA_BASE[b.family]:08X}"
    for name in ("validate_bd_design", "make_wrapper", "launch_runs", "wait_on_run"):
        assert calls.named(name), name
    launch = calls.named("launch_runs")[0]
    assert launch[1:] == ["impl_1", "-to_step", "write_bitstream", "-jobs", "3"]
    # every file the script hands to Vivado exists and lies in OUT
    for words, existing in calls:
        if words[0] in ("add_files", "source"):
            files = [f for w in words[1:] if not w.startswith("-") for f in w.split()]
            assert files and all(f in existing and inside(f, out) for f in files), words
    added = calls.files("add_files")
    assert str(out.resolve() / VIVADO_DIR / adapters_file(design.top_name)) in added
    assert calls.files("source") == [str(out.resolve() / VIVADO_DIR / BLOCK_DESIGN_SCRIPT)]
    # deploy/: the pair PYNQ's Overlay loads, and the build record
    assert (out / "deploy" / f"{design.top_name}.bit").read_text() == "bitstream\n"
    assert (out / "deploy" / f"{design.top_name}.hwh").read_text() == "<EDKSYSTEM/>\n"
    info = json.loads((out / "deploy" / "build_info.json").read_text())
    assert info == {"top": design.top_name, "variant": "hls", "board": b.name, "part": b.part,
                    "board_part": b.board_part, "clock_mhz": design.clock_mhz, "vivado": "2024.2",
                    "wns_ns": 0.25}


def test_rtl_variant_flow(tmp_path: Path) -> None:
    out, design = emitted(tmp_path, "pynq-z2")
    top = design.top_name
    calls, _ = run_stubbed(out / VIVADO_DIR / PACKAGE_SCRIPT, [], tmp_path, [])
    for words, existing in calls:
        if words[0] == "add_files":
            assert all(f in existing for w in words[1:] if not w.startswith("-") for f in w.split()), words
    out = out.resolve()
    assert sorted(calls.files("add_files")) == sorted(str(p) for p in [
        out / "rtl" / f"{top}.v", out / "rtl" / "einhls_relu.v", out / "rtl" / "layer0_weights.mem",
        out / VIVADO_DIR / adapters_file(top), out / VIVADO_DIR / dma_top_file(top)])
    assert ["set_property", "top", f"{top}_dma", "<fileset>"][:3] == \
        [w for w in calls.named("set_property") if w[1] == "top"][0][:3]
    package = calls.named("ipx::package_project")[0]
    assert package[package.index("-root_dir") + 1] == str(out / "build" / "ip_rtl")
    assert (out / "build" / "ip_rtl" / "component.xml").is_file()

    calls, _ = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["rtl"], tmp_path, [])
    # no board files installed: the bare part, no board preset
    assert not [w for w in calls.named("set_property") if w[1] == "board_part"]
    assert not calls.named("apply_bd_automation")
    cells = {words[-1]: words for words in calls.named("create_bd_cell")}
    assert cells["einhls_accel"][cells["einhls_accel"].index("-vlnv") + 1] == f"stub.vendor:stub:{top}_dma:1.0"
    assert "einhls_dma_in" not in cells        # the packaged IP holds the adapters
    nets = [words[1:] for words in calls.named("connect_bd_intf_net")]
    assert [f"{DMA_INSTANCE}/M_AXIS_MM2S", "einhls_accel/s_axis"] in nets
    assert ["einhls_accel/m_axis", f"{DMA_INSTANCE}/S_AXIS_S2MM"] in nets
    assert (out / "deploy" / f"{top}.bit").is_file()


def test_missing_ip_and_timing_failure_stop_the_script(tmp_path: Path) -> None:
    out, design = emitted(tmp_path, "pynq-z2")
    _, done = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["hls"], tmp_path, [], check=False)
    assert done.returncode != 0 and "make hls-ip" in done.stderr
    _, done = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["rtl"], tmp_path, [], check=False)
    assert done.returncode != 0 and "make rtl-ip" in done.stderr
    _, done = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["vhdl"], tmp_path, [], check=False)
    assert done.returncode != 0 and "hls or rtl" in done.stderr
    fake_hls_export(out, design)
    _, done = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["hls"], tmp_path, [], wns="-0.4", check=False)
    assert done.returncode != 0 and "timing not met" in done.stderr
    assert not (out / "deploy").exists()
    calls, done = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["hls", "2", "1"], tmp_path, [], wns="-0.4")
    assert "WARNING: einhls: timing not met" in done.stdout
    assert json.loads((out / "deploy" / "build_info.json").read_text())["wns_ns"] == -0.4


def test_board_files_of_another_version_are_used(tmp_path: Path) -> None:
    out, design = emitted(tmp_path, "pynq-z2")
    fake_hls_export(out, design)
    other = design.board.board_part.rsplit(":", 1)[0] + ":9.9"
    calls, done = run_stubbed(out / VIVADO_DIR / BUILD_SCRIPT, ["hls"], tmp_path, [other])
    assert [w for w in calls.named("set_property") if w[1] == "board_part"][0][2] == other
    assert "not installed, using" in done.stdout
    assert calls.named("apply_bd_automation")


@pytest.mark.parametrize("name", sorted(n for n, b in known_boards().items() if not b.open_flow))
def test_every_board_renders(name: str, tmp_path: Path) -> None:
    """Part, PS and clock of each boards/*.json reach the scripts; all scripts are complete Tcl."""
    board = known_boards()[name]
    design = manual_design(linear_graph(6, 4, QType(True, 8, 0.5), 4, QType(True, 8, 0.5)),
                           {"layer0": (2, 2, 2, 2)}, board=name)
    out = tmp_path / name
    emit_vivado(design, out)
    build = (out / VIVADO_DIR / BUILD_SCRIPT).read_text()
    bd = (out / VIVADO_DIR / BLOCK_DESIGN_SCRIPT).read_text()
    assert f"set part {{{board.part}}}" in build and f"set board_part {{{board.board_part}}}" in build
    assert f"set clock_mhz {board.clock_mhz:g}" in build
    assert f"create_bd_cell -type ip -vlnv [einhls_latest_ip {board.ps}]" in bd
    checker = tmp_path / "complete.tcl"
    checker.write_text('foreach f $argv { set fh [open $f]; set t [read $fh]; close $fh\n'
                       '  if {![info complete $t]} { puts stderr "incomplete: $f"; exit 1 } }\n')
    scripts = sorted(str(p) for p in (out / VIVADO_DIR).glob("*.tcl"))
    assert len(scripts) == 3
    done = subprocess.run(["tclsh", str(checker), *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_output_is_deterministic(tmp_path: Path) -> None:
    design = DESIGNS["pynq-z2"]()
    emit_vivado(design, tmp_path / "a")
    emit_vivado(DESIGNS["pynq-z2"](), tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_dma_frame_geometry() -> None:
    from codegen.schedule.design import StreamFormat
    f = dma_frame(StreamFormat(size=7, bits=5, signed=True, lanes=3))    # 15 bits -> 2-byte beats
    assert (f.beats, f.beat_bytes, f.payload_bytes, f.words, f.pad_bytes, f.last_bytes) == (3, 2, 6, 2, 2, 2)
    f = dma_frame(StreamFormat(size=24, bits=8, signed=True, lanes=4))
    assert (f.payload_bytes, f.words, f.pad_bytes, f.last_bytes) == (24, 6, 0, 4)
    plan = plan_board(DESIGNS["kv260"]())
    assert plan.dma_addr_width == 64 and plan.dma_base == DMA_BASE["zynquplus"]


# --- the Makefile ---------------------------------------------------------------------------------

def fake_tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_names_the_missing_tool(tmp_path: Path) -> None:
    out, _ = emitted(tmp_path, "pynq-z2")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["make", "-C", str(out), "bitstream"], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "'vitis_hls' is not on PATH" in done.stderr and "Vitis HLS" in done.stderr
    assert "'vitis-run'" in done.stderr
    done = subprocess.run(["make", "-C", str(out), "bitstream", "VARIANT=rtl"], env=env, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "'vivado' is not on PATH" in done.stderr
    done = subprocess.run(["make", "-C", str(out), "bitstream", "VARIANT=vhdl"], env=env, capture_output=True,
                          text=True)
    assert done.returncode != 0 and "VARIANT must be hls or rtl" in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("variant", ["hls", "rtl"])
def test_makefile_runs_the_flow(variant: str, tmp_path: Path) -> None:
    """`make bitstream` with stand-ins for the tools: the stubbed Tcl flow ends with deploy/."""
    out, design = emitted(tmp_path, "pynq-z2")
    tools = tmp_path / "bin"
    tools.mkdir()
    prelude = tmp_path / "vivado_stubs.tcl"
    prelude.write_text(PRELUDE)
    log = tmp_path / "calls.log"
    # vivado -mode batch ... -source SCRIPT [-tclargs ARGS]: the script under the stubs
    fake_tool(tools, "vivado", f"""
while [ $# -gt 0 ]; do
  case "$1" in -source) script="$2"; shift 2;; -tclargs) shift; break;; *) shift;; esac
done
echo "vivado $script $*" >> "{tmp_path}/tools.log"
exec tclsh "{prelude}" "{log}" "$script" "" 0.5 "$@"
""")
    # vitis_hls -f run_hls.tcl in hls/: leaves the IP export where Vitis HLS does
    fake_tool(tools, "vitis_hls", f"""
echo "vitis_hls $(pwd) $*" >> "{tmp_path}/tools.log"
mkdir -p {design.top_name}_prj/solution1/impl/ip && echo '<component/>' > {design.top_name}_prj/solution1/impl/ip/component.xml
""")
    (out / "hls").mkdir()
    (out / "hls" / "run_hls.tcl").write_text("# from the HLS back end\n")
    env = {**os.environ, "PATH": f"{tools}:/usr/bin:/bin"}
    done = subprocess.run(["make", "-C", str(out), "bitstream", f"VARIANT={variant}", "JOBS=1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ran = (tmp_path / "tools.log").read_text().splitlines()
    if variant == "hls":
        assert ran[0] == f"vitis_hls {out / 'hls'} -f run_hls.tcl"
        assert ran[1] == f"vivado vivado/{BUILD_SCRIPT} hls 1 0"
    else:
        assert ran == [f"vivado vivado/{PACKAGE_SCRIPT} ", f"vivado vivado/{BUILD_SCRIPT} rtl 1 0"]
    assert (out / "deploy" / f"{design.top_name}.bit").is_file()
    assert (out / "deploy" / f"{design.top_name}.hwh").is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_prefers_vitis_run_when_installed(tmp_path: Path) -> None:
    """Vitis 2024.2 and later: `vitis-run --mode hls --tcl run_hls.tcl` in hls/ (before vitis_hls)."""
    out, design = emitted(tmp_path, "pynq-z2")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("vitis-run", "vitis_hls"):
        fake_tool(tools, name, f"""
echo "{name} $(pwd) $*" >> "{tmp_path}/tools.log"
mkdir -p {design.top_name}_prj/solution1/impl/ip && echo '<component/>' > {design.top_name}_prj/solution1/impl/ip/component.xml
""")
    (out / "hls").mkdir(exist_ok=True)
    (out / "hls" / "run_hls.tcl").write_text("# from the HLS back end\n")
    env = {**os.environ, "PATH": f"{tools}:/usr/bin:/bin"}
    done = subprocess.run(["make", "-C", str(out), "hls-ip"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "tools.log").read_text().splitlines() == [
        f"vitis-run {out / 'hls'} --mode hls --tcl run_hls.tcl"]
