// einhls_mul: elementwise product of two token streams (gates), LANES elements per beat:
//
//     y = clamp(rne((a - A_ZP) * (b - B_ZP) * M, SHIFT) + ZP, LO, HI)
//
// exactly codegen/ir/joins.py Mul.reference.  A beat is taken from both inputs at once; lanes
// after the last element of a token (SIZE elements) are zero.  One beat per cycle, latency 4.
// The arithmetic and pipeline are einhls_binop's (see there for widths and handshakes).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_mul #(
    parameter integer LANES    = 1,       // elements per beat
    parameter integer SIZE     = 8,       // elements per token
    parameter integer A_BITS   = 8,
    parameter integer A_SIGNED = 1,
    parameter integer B_BITS   = 8,
    parameter integer B_SIGNED = 1,
    parameter integer OUT_BITS = 8,
    parameter signed [63:0] A_ZP = 0,
    parameter signed [63:0] B_ZP = 0,
    parameter [63:0]  M        = 1,       // multiplier of the product
    parameter integer M_BITS   = 1,       // width of the unsigned multiplier(s)
    parameter integer SHIFT    = 0,
    parameter signed [63:0] ZP = 0,
    parameter signed [63:0] LO = -128,
    parameter signed [63:0] HI = 127
) (
    input  wire                      clk,
    input  wire                      rst,

    input  wire [LANES*A_BITS-1:0]   s0_axis_tdata,     // a
    input  wire                      s0_axis_tvalid,
    output wire                      s0_axis_tready,

    input  wire [LANES*B_BITS-1:0]   s1_axis_tdata,     // b
    input  wire                      s1_axis_tvalid,
    output wire                      s1_axis_tready,

    output wire [LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);

    einhls_binop #(
        .LANES(LANES), .SIZE(SIZE), .A_BITS(A_BITS), .A_SIGNED(A_SIGNED), .B_BITS(B_BITS),
        .B_SIGNED(B_SIGNED), .OUT_BITS(OUT_BITS), .MUL(1), .A_ZP(A_ZP), .B_ZP(B_ZP),
        .MA(M), .MB(M), .M_BITS(M_BITS), .SHIFT(SHIFT), .ZP(ZP), .LO(LO), .HI(HI)
    ) u_core (
        .clk(clk), .rst(rst),
        .s0_axis_tdata(s0_axis_tdata), .s0_axis_tvalid(s0_axis_tvalid), .s0_axis_tready(s0_axis_tready),
        .s1_axis_tdata(s1_axis_tdata), .s1_axis_tvalid(s1_axis_tvalid), .s1_axis_tready(s1_axis_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall
