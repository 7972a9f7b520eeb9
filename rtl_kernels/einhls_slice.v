// einhls_slice: per token of IN_BEATS beats, passes beats FIRST .. FIRST+COUNT-1 and drops the
// others (a feature slice whose start is a multiple of the lanes and whose stop is a multiple of
// the lanes or the token's end, so whole beats are kept or dropped).
//
// Dropped beats are accepted at once, whatever the output does; kept beats go through one output
// register (one beat per cycle; s_axis_tready depends on m_axis_tready for kept beats).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_slice #(
    parameter integer WIDTH    = 8,     // bits per beat
    parameter integer IN_BEATS = 4,     // beats per input token
    parameter integer FIRST    = 0,     // first beat kept
    parameter integer COUNT    = 1      // beats kept per token
) (
    input  wire               clk,
    input  wire               rst,

    input  wire [WIDTH-1:0]   s_axis_tdata,
    input  wire               s_axis_tvalid,
    output wire               s_axis_tready,

    output wire [WIDTH-1:0]   m_axis_tdata,
    output wire               m_axis_tvalid,
    input  wire               m_axis_tready
);

    localparam integer BW          = (IN_BEATS <= 2) ? 1 : $clog2(IN_BEATS);
    localparam integer LAST_BEAT_I = IN_BEATS - 1;
    localparam integer STOP_I      = (FIRST + COUNT) % IN_BEATS;   // first beat dropped again
    localparam [BW-1:0] LAST_BEAT  = LAST_BEAT_I[BW-1:0];
    localparam [BW-1:0] FIRST_C    = FIRST[BW-1:0];
    localparam [BW-1:0] STOP_C     = STOP_I[BW-1:0];

    reg [BW-1:0]    beat = 0;
    reg             keep = FIRST == 0;   // the current beat is inside the slice
    reg [WIDTH-1:0] data = 0;
    reg             valid = 1'b0;

    wire en = !valid || m_axis_tready;
    assign s_axis_tready = en || !keep;
    wire fire = s_axis_tvalid && (en || !keep);
    wire [BW-1:0] next_beat = (beat == LAST_BEAT) ? {BW{1'b0}} : beat + 1'b1;

    always @(posedge clk) begin
        if (en) begin
            valid <= s_axis_tvalid && keep;
            data  <= s_axis_tdata;
        end
        if (fire) begin
            beat <= next_beat;
            // entering the slice wins over leaving it: FIRST == STOP only when every beat is kept
            keep <= (next_beat == FIRST_C) ? 1'b1 : (next_beat == STOP_C) ? 1'b0 : keep;
        end
        if (rst) begin
            valid <= 1'b0;
            beat  <= {BW{1'b0}};
            keep  <= FIRST == 0;
        end
    end

    assign m_axis_tdata  = data;
    assign m_axis_tvalid = valid;

endmodule

`resetall
