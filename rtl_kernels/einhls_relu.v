// einhls_relu: elementwise ReLU on integer codes, y = max(x, ZP), LANES elements per beat.
//
// ZP is the input zero point (the code of real 0), so this is ReLU for any affine quantizer.
// Lanes after the last element of a frame are output as zero (max(0, ZP) would not be when
// ZP > 0).  One register stage; advances when the output register is free.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_relu #(
    parameter integer SIZE   = 8,       // elements per frame
    parameter integer LANES  = 1,       // elements per beat
    parameter integer BITS   = 8,
    parameter integer SIGNED = 1,
    parameter signed [63:0] ZP = 0      // zero point of the input (and output) type
) (
    input  wire                  clk,
    input  wire                  rst,

    input  wire [LANES*BITS-1:0] s_axis_tdata,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,

    output wire [LANES*BITS-1:0] m_axis_tdata,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready
);

    localparam integer BEATS      = (SIZE + LANES - 1) / LANES;
    localparam integer LAST_LANES = SIZE - (BEATS - 1) * LANES;
    localparam integer BW         = (BEATS <= 2) ? 1 : $clog2(BEATS);
    localparam integer LAST_BEAT_I = BEATS - 1;
    localparam [BW-1:0] LAST_BEAT = LAST_BEAT_I[BW-1:0];
    // x and ZP compared as BITS+1-bit signed numbers (covers signed and unsigned codes)
    localparam signed [BITS:0] ZP_C = ZP[BITS:0];

    reg [BW-1:0]         beat = 0;
    reg [LANES*BITS-1:0] y = 0;
    reg                  valid = 1'b0;
    wire [LANES*BITS-1:0] y_next;

    wire en = !valid || m_axis_tready;
    assign s_axis_tready = en;
    wire last = beat == LAST_BEAT;

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            wire [BITS-1:0] x = s_axis_tdata[l*BITS +: BITS];
            wire signed [BITS:0] x_s = (SIGNED != 0) ? {x[BITS-1], x} : {1'b0, x};
            wire [BITS-1:0] r = (x_s < ZP_C) ? ZP_C[BITS-1:0] : x;
            assign y_next[l*BITS +: BITS] = (l >= LAST_LANES && last) ? {BITS{1'b0}} : r;
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid <= s_axis_tvalid;
            y     <= y_next;
            if (s_axis_tvalid) begin
                beat <= last ? {BW{1'b0}} : beat + 1'b1;
            end
        end
        if (rst) begin
            valid <= 1'b0;
            beat  <= {BW{1'b0}};
        end
    end

    assign m_axis_tdata  = y;
    assign m_axis_tvalid = valid;

endmodule

`resetall
