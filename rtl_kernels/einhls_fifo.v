// einhls_fifo: synchronous first-word-fall-through FIFO with a registered output.
//
// DEPTH words are kept in a simple dual-port memory (LUTRAM or block RAM, inferred) and one more
// in the output register, so the FIFO holds DEPTH + 1 words.  Every output is a register and
// s_axis_tready depends only on registered state: the FIFO cuts both the data and the ready path.
// DEPTH may be any number of words from 2: a power of two wraps its pointers by the carry, any
// other depth at DEPTH (the scheduler sizes a FIFO of a sequence at its depth, not the next power
// of two: 49,536 words of 8 bits take 13 BRAM36, 65,536 take 16).  URAM = 1 asks for UltraRAM
// ((* ram_style = "ultra" *)): the scheduler puts a long FIFO there packed into words of several
// lanes (codegen/schedule/fifo_memory.py); LUTRAM = 1 asks for LUT RAM; neither leaves LUT RAM or
// block RAM to synthesis.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_fifo #(
    parameter integer DEPTH = 16,
    parameter integer WIDTH = 8,
    parameter integer URAM  = 0,
    parameter integer LUTRAM = 0
) (
    input  wire             clk,
    input  wire             rst,

    input  wire [WIDTH-1:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,

    output wire [WIDTH-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready
);

    localparam integer AW = (DEPTH <= 2) ? 1 : $clog2(DEPTH);
    // a power of two (and DEPTH 1, kept at 2 words as before) wraps by the carry into the lap bit
    localparam integer POW2 = (DEPTH <= 2 || (1 << AW) == DEPTH) ? 1 : 0;
    localparam integer WORDS = POW2 != 0 ? (1 << AW) : DEPTH;
    localparam [31:0] LAST = WORDS - 1;
    // URAM = 1: UltraRAM; LUTRAM = 1: LUT RAM (ram_style "distributed"), where block RAM is what
    // the design runs out of (codegen/schedule/lutram.py); "auto" leaves the choice to synthesis,
    // as without the attribute
    /* verilator lint_off UNUSEDPARAM */   // read by the ram_style attribute only
    localparam RAM_STYLE = (URAM != 0) ? "ultra" : (LUTRAM != 0) ? "distributed" : "auto";
    /* verilator lint_on UNUSEDPARAM */

    reg [AW:0]      wr_ptr = 0;            // {lap, address}: the lap bit tells full from empty
    reg [AW:0]      rd_ptr = 0;
    reg [WIDTH-1:0] out_data = 0;
    reg             out_valid = 1'b0;

    wire empty = wr_ptr == rd_ptr;
    wire full  = wr_ptr == {~rd_ptr[AW], rd_ptr[AW-1:0]};

    assign s_axis_tready = !full;
    wire write = s_axis_tvalid && !full;
    // move the head word into the output register whenever that register is (or becomes) free
    wire read  = !empty && (!out_valid || m_axis_tready);

    // the pointer after this one: the address wraps to 0 after LAST and the lap bit flips
    wire [AW:0] wr_next = (POW2 != 0 || wr_ptr[AW-1:0] != LAST[AW-1:0]) ? wr_ptr + 1'b1 : {~wr_ptr[AW], {AW{1'b0}}};
    wire [AW:0] rd_next = (POW2 != 0 || rd_ptr[AW-1:0] != LAST[AW-1:0]) ? rd_ptr + 1'b1 : {~rd_ptr[AW], {AW{1'b0}}};

    (* ram_style = RAM_STYLE *)
    reg [WIDTH-1:0] mem [0:WORDS-1];
    always @(posedge clk) begin
        if (write) begin
            mem[wr_ptr[AW-1:0]] <= s_axis_tdata;
        end
    end
    always @(posedge clk) begin
        if (read) begin
            out_data <= mem[rd_ptr[AW-1:0]];
        end
    end

    always @(posedge clk) begin
        if (write) begin
            wr_ptr <= wr_next;
        end
        if (read) begin
            rd_ptr    <= rd_next;
            out_valid <= 1'b1;
        end else if (m_axis_tready) begin
            out_valid <= 1'b0;
        end
        if (rst) begin
            wr_ptr    <= 0;
            rd_ptr    <= 0;
            out_valid <= 1'b0;
        end
    end

    assign m_axis_tdata  = out_data;
    assign m_axis_tvalid = out_valid;

endmodule

`resetall
