// einhls_concat: the features of N token streams one after the other (N = 2..4).
//
// Per token: BEATS0 beats of input 0, then BEATS1 of input 1, ... (every input's feature count
// is a multiple of the lanes, so its beats simply follow).  Unused BEATSi (i >= N) are 0.  Only
// the input whose turn it is sees s_axis_tready.  One register stage, one beat per cycle; it
// advances when the output register is free, so s_axis_tready depends on m_axis_tready.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_concat #(
    parameter integer N      = 2,       // inputs
    parameter integer WIDTH  = 8,       // bits per beat (LANES * BITS)
    parameter integer BEATS0 = 1,       // beats per token of each input
    parameter integer BEATS1 = 1,
    parameter integer BEATS2 = 0,
    parameter integer BEATS3 = 0
) (
    input  wire                 clk,
    input  wire                 rst,

    input  wire [N*WIDTH-1:0]   s_axis_tdata,   // input i in bits [i*WIDTH +: WIDTH]
    input  wire [N-1:0]         s_axis_tvalid,
    output wire [N-1:0]         s_axis_tready,

    output wire [WIDTH-1:0]     m_axis_tdata,
    output wire                 m_axis_tvalid,
    input  wire                 m_axis_tready
);

    localparam integer MAX01 = BEATS0 > BEATS1 ? BEATS0 : BEATS1;
    localparam integer MAX23 = BEATS2 > BEATS3 ? BEATS2 : BEATS3;
    localparam integer MAXB  = MAX01 > MAX23 ? MAX01 : MAX23;
    localparam integer BW    = (MAXB <= 2) ? 1 : $clog2(MAXB);
    localparam integer SW    = (N <= 2) ? 1 : 2;
    localparam integer LAST_INPUT_I = N - 1;
    localparam [SW-1:0] LAST_INPUT = LAST_INPUT_I[SW-1:0];

    reg [SW-1:0]    sel = 0;            // input whose beats are passed now
    reg [BW-1:0]    beat = 0;           // beat of the token within that input
    reg [WIDTH-1:0] data = 0;
    reg             valid = 1'b0;

    // last beat index of every input, as BW-bit constants (an unused input never gets a turn)
    localparam integer L0 = BEATS0 - 1, L1 = BEATS1 - 1;
    localparam integer L2 = BEATS2 > 0 ? BEATS2 - 1 : 0, L3 = BEATS3 > 0 ? BEATS3 - 1 : 0;
    reg [BW-1:0] last_beat;
    always @(*) begin
        case (sel)
            2'd0:    last_beat = L0[BW-1:0];
            2'd1:    last_beat = L1[BW-1:0];
            2'd2:    last_beat = L2[BW-1:0];
            default: last_beat = L3[BW-1:0];
        endcase
    end

    wire en = !valid || m_axis_tready;
    wire [N-1:0] turn;
    genvar i;
    generate
        for (i = 0; i < N; i = i + 1) begin : g_turn
            assign turn[i] = sel == i[SW-1:0];
        end
    endgenerate
    assign s_axis_tready = en ? turn : {N{1'b0}};
    wire in_valid = |(s_axis_tvalid & turn);
    wire fire = en && in_valid;
    wire last = beat == last_beat;

    always @(posedge clk) begin
        if (en) begin
            valid <= in_valid;
            data  <= s_axis_tdata[sel*WIDTH +: WIDTH];
        end
        if (fire) begin
            beat <= last ? {BW{1'b0}} : beat + 1'b1;
            if (last) begin
                sel <= (sel == LAST_INPUT) ? {SW{1'b0}} : sel + 1'b1;
            end
        end
        if (rst) begin
            valid <= 1'b0;
            beat  <= {BW{1'b0}};
            sel   <= {SW{1'b0}};
        end
    end

    assign m_axis_tdata  = data;
    assign m_axis_tvalid = valid;

endmodule

`resetall
