// einhls_tapmax: per channel, the largest code over the TAPS pixels of a window (MaxPool after
// einhls_window).  A window is TAPS taps of GROUPS = CHANNELS / LANES beats; beat g of tap t holds
// channels g*LANES .. g*LANES+LANES-1.  A running maximum per beat group is kept; the beats of the
// last tap leave as they arrive (max with the running value), so a window of TAPS*GROUPS beats in
// gives GROUPS beats out, one input beat per cycle.  Codes compare as BITS+1-bit signed numbers
// (SIGNED or not), so the result is exact for any scale and zero point.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_tapmax #(
    parameter integer CHANNELS = 1,
    parameter integer LANES    = 1,     // divides CHANNELS
    parameter integer BITS     = 8,
    parameter integer SIGNED   = 1,
    parameter integer TAPS     = 1
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

    localparam integer GROUPS = CHANNELS / LANES;
    localparam integer GW = (GROUPS <= 2) ? 1 : $clog2(GROUPS);
    localparam integer TW = (TAPS <= 2) ? 1 : $clog2(TAPS);
    localparam integer LAST_GROUP_I = GROUPS - 1;
    localparam integer LAST_TAP_I = TAPS - 1;
    localparam [GW-1:0] LAST_GROUP = LAST_GROUP_I[GW-1:0];
    localparam [TW-1:0] LAST_TAP = LAST_TAP_I[TW-1:0];

    reg [LANES*BITS-1:0] running [0:GROUPS-1];
    reg [GW-1:0] group = 0;
    reg [TW-1:0] tap = 0;
    reg [LANES*BITS-1:0] y = 0;
    reg valid = 1'b0;

    wire last_tap = tap == LAST_TAP;
    wire en = !valid || m_axis_tready;
    // beats of earlier taps only update the running maximum; the last tap's need the output register
    assign s_axis_tready = !last_tap || en;
    wire fire = s_axis_tvalid && s_axis_tready;

    wire [LANES*BITS-1:0] so_far = running[group];
    wire [LANES*BITS-1:0] larger;
    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            wire [BITS-1:0] a = s_axis_tdata[l*BITS +: BITS];
            wire [BITS-1:0] b = so_far[l*BITS +: BITS];
            wire signed [BITS:0] a_s = (SIGNED != 0) ? {a[BITS-1], a} : {1'b0, a};
            wire signed [BITS:0] b_s = (SIGNED != 0) ? {b[BITS-1], b} : {1'b0, b};
            // the first tap starts the running maximum
            assign larger[l*BITS +: BITS] = (tap == {TW{1'b0}} || a_s > b_s) ? a : b;
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid <= fire && last_tap;
        end
        if (fire) begin
            running[group] <= larger;
            if (last_tap) y <= larger;
            if (group == LAST_GROUP) begin
                group <= {GW{1'b0}};
                tap <= last_tap ? {TW{1'b0}} : tap + 1'b1;
            end else begin
                group <= group + 1'b1;
            end
        end
        if (rst) begin
            valid <= 1'b0;
            group <= {GW{1'b0}};
            tap   <= {TW{1'b0}};
        end
    end

    assign m_axis_tdata  = y;
    assign m_axis_tvalid = valid;

endmodule

`resetall
