// einhls_tokenmean: the mean of every feature over a sequence of TOKENS tokens (codegen/ir/pooling.py
// TokenMean), LANES features per beat:
//
//     acc[c] = sum_t (x[t, c] - IN_ZP)                    ACC_BITS, exact
//     y[c]   = clamp(rne(acc[c] * MULT, SHIFT) + ZP, LO, HI)   einhls_requant
//
// Phases: accumulate (one beat per cycle, the first token of a sequence overwrites the
// accumulators, so nothing is cleared), then output (the BEATS accumulator words through
// einhls_requant, one per cycle).  OVERLAP = 0: one bank of accumulators, the input waits while
// they drain, a sequence takes TOKENS * BEATS + BEATS cycles.  OVERLAP = 1: two banks used in
// turn, so the next sequence accumulates into one while the other drains; the input waits only
// when the bank it would write still holds undrained sums, a sequence takes TOKENS * BEATS cycles
// (TOKENS >= 1; the drain of BEATS beats never takes longer than a sequence's input).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_tokenmean #(
    parameter integer SIZE      = 8,
    parameter integer LANES     = 1,
    parameter integer TOKENS    = 4,
    parameter integer IN_BITS   = 8,
    parameter integer IN_SIGNED = 1,
    parameter signed [63:0] IN_ZP = 0,
    parameter integer ACC_BITS  = 12,
    parameter integer V_BITS    = 12,
    parameter integer M_BITS    = 16,
    parameter [63:0]  MULT      = 1,
    parameter integer SHIFT     = 0,
    parameter signed [63:0] ZP  = 0,
    parameter signed [63:0] LO  = -128,
    parameter signed [63:0] HI  = 127,
    parameter integer OUT_BITS  = 8,
    parameter integer OVERLAP   = 0
) (
    input  wire                      clk,
    input  wire                      rst,

    input  wire [LANES*IN_BITS-1:0]  s_axis_tdata,
    input  wire                      s_axis_tvalid,
    output wire                      s_axis_tready,

    output wire [LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);

    localparam integer BEATS = (SIZE + LANES - 1) / LANES;
    localparam integer BW    = (BEATS <= 2) ? 1 : $clog2(BEATS);
    localparam integer TW    = (TOKENS <= 2) ? 1 : $clog2(TOKENS);
    localparam integer LAST_BEAT_I  = BEATS - 1;
    localparam integer LAST_TOKEN_I = TOKENS - 1;
    localparam [BW-1:0] LAST_BEAT  = LAST_BEAT_I[BW-1:0];
    localparam [TW-1:0] LAST_TOKEN = LAST_TOKEN_I[TW-1:0];

    localparam integer BANKS = (OVERLAP != 0) ? 2 : 1;

    // bank b holds words b * BEATS .. b * BEATS + BEATS - 1
    reg [LANES*ACC_BITS-1:0] acc [0:BANKS*BEATS-1];
    reg [BANKS-1:0] full = {BANKS{1'b0}};   // the bank's sums are complete and not yet all written out
    reg          wbank_q = 1'b0;
    reg          rbank_q = 1'b0;
    // the bank being accumulated and the bank being written out: constant 0 without OVERLAP, so
    // the one-bank unit is the same logic as before there were two
    wire         wbank = (OVERLAP != 0) && wbank_q;
    wire         rbank = (OVERLAP != 0) && rbank_q;
    reg [BW-1:0] beat = 0;
    reg [TW-1:0] token = 0;
    reg [BW-1:0] obeat = 0;

    localparam integer AW = (BANKS * BEATS <= 2) ? 1 : $clog2(BANKS * BEATS);
    localparam integer BANK1_I = (OVERLAP != 0) ? BEATS : 0;
    localparam [AW-1:0] BANK1 = BANK1_I[AW-1:0];   // the first word of bank 1
    /* verilator lint_off WIDTHEXPAND */
    wire [AW-1:0] waddr = (OVERLAP != 0) ? (wbank ? BANK1 : {AW{1'b0}}) + beat : beat;
    wire [AW-1:0] raddr = (OVERLAP != 0) ? (rbank ? BANK1 : {AW{1'b0}}) + obeat : obeat;
    /* verilator lint_on WIDTHEXPAND */
    wire writing  = full[wbank];            // the bank to accumulate into still drains: wait
    wire draining = full[rbank];

    assign s_axis_tready = !writing;
    wire in_fire = s_axis_tvalid && !writing;

    wire [LANES*ACC_BITS-1:0] acc_next;
    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            wire [IN_BITS-1:0] raw = s_axis_tdata[l*IN_BITS +: IN_BITS];
            wire signed [63:0] x = (IN_SIGNED != 0) ? {{(64-IN_BITS){raw[IN_BITS-1]}}, raw}
                                                    : {{(64-IN_BITS){1'b0}}, raw};
            /* verilator lint_off UNUSEDSIGNAL */  // |x - IN_ZP| < 2^IN_BITS, the sum fits ACC_BITS
            wire signed [63:0] centered = x - IN_ZP;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ACC_BITS-1:0] prior = (token == {TW{1'b0}}) ? {ACC_BITS{1'b0}} : acc[waddr][l*ACC_BITS +: ACC_BITS];
            assign acc_next[l*ACC_BITS +: ACC_BITS] = prior + centered[ACC_BITS-1:0];
        end
    endgenerate

    wire rq_ready;
    wire out_fire = draining && rq_ready;

    always @(posedge clk) begin
        if (in_fire) begin
            acc[waddr] <= acc_next;
            beat <= (beat == LAST_BEAT) ? {BW{1'b0}} : beat + 1'b1;
            if (beat == LAST_BEAT) begin
                token <= (token == LAST_TOKEN) ? {TW{1'b0}} : token + 1'b1;
                if (token == LAST_TOKEN) begin
                    full[wbank] <= 1'b1;
                    wbank_q <= !wbank_q;
                end
            end
        end
        // (never the bank the input just completed: in_fire needs full[wbank] = 0, out_fire
        // full[rbank] = 1)
        if (out_fire) begin
            obeat <= (obeat == LAST_BEAT) ? {BW{1'b0}} : obeat + 1'b1;
            if (obeat == LAST_BEAT) begin
                full[rbank] <= 1'b0;
                rbank_q <= !rbank_q;
            end
        end
        if (rst) begin
            full     <= {BANKS{1'b0}};
            wbank_q  <= 1'b0;
            rbank_q  <= 1'b0;
            beat     <= {BW{1'b0}};
            token    <= {TW{1'b0}};
            obeat    <= {BW{1'b0}};
        end
    end

    einhls_requant #(
        .SIZE(SIZE), .LANES(LANES), .IN_BITS(ACC_BITS), .IN_SIGNED(1), .V_BITS(V_BITS),
        .OFFSET_ROM(0), .OFF_BITS(1), .OFFSET(0), .M_BITS(M_BITS), .MULT_ROM(0), .MULT(MULT),
        .SHIFT(SHIFT), .ZP(ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(acc[raddr]), .s_axis_tvalid(draining), .s_axis_tready(rq_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall
