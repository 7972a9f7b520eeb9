// einhls_maskedmean: the mean over the real tokens of a sequence (codegen/ir/pooling.py
// MaskedTokenMean), LANES features per beat; s1 carries the mask, one beat a token (the code in
// lane 0: nonzero = a token, 0 = padding), taken with the token's first beat:
//
//     n      = max(1, tokens with mask != 0)
//     acc[c] = sum over those tokens of (x[t, c] - IN_ZP)            ACC_BITS, exact
//     y[c]   = clamp(rne(acc[c] * MULTS[n - 1], SHIFT) + ZP, LO, HI)  einhls_requant (MULT 1)
//
// MULTS packs the TOKENS multipliers, n = 1 in the low M_BITS.  Phases as einhls_tokenmean:
// accumulate one beat per cycle, then write the C means; OVERLAP = 0: while the input waits
// (TOKENS * BEATS + BEATS cycles a sequence), OVERLAP = 1: from a second bank of sums (and count)
// while the next sequence accumulates into the first (TOKENS * BEATS cycles a sequence).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_maskedmean #(
    parameter integer SIZE      = 8,
    parameter integer LANES     = 1,
    parameter integer TOKENS    = 4,
    parameter integer IN_BITS   = 8,
    parameter integer IN_SIGNED = 1,
    parameter signed [63:0] IN_ZP = 0,
    parameter integer M_LANES   = 1,
    parameter integer MASK_BITS = 8,
    parameter integer ACC_BITS  = 12,
    parameter integer M_BITS    = 16,
    parameter [TOKENS*M_BITS-1:0] MULTS = 0,
    parameter integer V_BITS    = 29,
    parameter integer SHIFT     = 0,
    parameter signed [63:0] ZP  = 0,
    parameter signed [63:0] LO  = -128,
    parameter signed [63:0] HI  = 127,
    parameter integer OUT_BITS  = 8,
    parameter integer OVERLAP   = 0
) (
    input  wire                         clk,
    input  wire                         rst,

    input  wire [LANES*IN_BITS-1:0]     s0_axis_tdata,
    input  wire                         s0_axis_tvalid,
    output wire                         s0_axis_tready,

    /* verilator lint_off UNUSEDSIGNAL */  // lanes after the first carry no mask code
    input  wire [M_LANES*MASK_BITS-1:0] s1_axis_tdata,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                         s1_axis_tvalid,
    output wire                         s1_axis_tready,

    output wire [LANES*OUT_BITS-1:0]    m_axis_tdata,
    output wire                         m_axis_tvalid,
    input  wire                         m_axis_tready
);

    localparam integer BEATS = (SIZE + LANES - 1) / LANES;
    localparam integer BW    = (BEATS <= 2) ? 1 : $clog2(BEATS);
    localparam integer TW    = (TOKENS <= 2) ? 1 : $clog2(TOKENS);
    localparam integer NW    = $clog2(TOKENS + 1);
    localparam integer PV    = ACC_BITS + M_BITS + 1;       // acc * multiplier, signed
    localparam integer LAST_BEAT_I  = BEATS - 1;
    localparam integer LAST_TOKEN_I = TOKENS - 1;
    localparam [BW-1:0] LAST_BEAT  = LAST_BEAT_I[BW-1:0];
    localparam [TW-1:0] LAST_TOKEN = LAST_TOKEN_I[TW-1:0];

    localparam integer BANKS = (OVERLAP != 0) ? 2 : 1;

    // bank b holds words b * BEATS .. b * BEATS + BEATS - 1 (einhls_tokenmean)
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
    reg          keep_cur = 1'b0;   // the mask of the token being read (after its first beat)
    reg [NW-1:0] count = 0;
    reg [NW-1:0] held_count [0:BANKS-1];   // OVERLAP: the count of each bank's complete sequence

    localparam integer AW = (BANKS * BEATS <= 2) ? 1 : $clog2(BANKS * BEATS);
    localparam integer BANK1_I = (OVERLAP != 0) ? BEATS : 0;
    localparam [AW-1:0] BANK1 = BANK1_I[AW-1:0];   // the first word of bank 1
    /* verilator lint_off WIDTHEXPAND */
    wire [AW-1:0] waddr = (OVERLAP != 0) ? (wbank ? BANK1 : {AW{1'b0}}) + beat : beat;
    wire [AW-1:0] raddr = (OVERLAP != 0) ? (rbank ? BANK1 : {AW{1'b0}}) + obeat : obeat;
    /* verilator lint_on WIDTHEXPAND */
    wire writing  = full[wbank];
    wire draining = full[rbank];

    wire first = beat == {BW{1'b0}};
    assign s0_axis_tready = !writing && (!first || s1_axis_tvalid);
    assign s1_axis_tready = !writing && first && s0_axis_tvalid;
    wire in_fire = s0_axis_tvalid && s0_axis_tready;
    wire keep = first ? |s1_axis_tdata[MASK_BITS-1:0] : keep_cur;
    // the count with this beat's token in (the count register takes it at the token's first beat)
    wire [NW-1:0] count_now = first ? ((token == {TW{1'b0}}) ? {NW{1'b0}} : count) + {{(NW-1){1'b0}}, keep} : count;

    wire [LANES*ACC_BITS-1:0] acc_next;
    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            wire [IN_BITS-1:0] raw = s0_axis_tdata[l*IN_BITS +: IN_BITS];
            wire signed [63:0] x = (IN_SIGNED != 0) ? {{(64-IN_BITS){raw[IN_BITS-1]}}, raw}
                                                    : {{(64-IN_BITS){1'b0}}, raw};
            /* verilator lint_off UNUSEDSIGNAL */  // |x - IN_ZP| < 2^IN_BITS, the sum fits ACC_BITS
            wire signed [63:0] centered = x - IN_ZP;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ACC_BITS-1:0] prior = (token == {TW{1'b0}}) ? {ACC_BITS{1'b0}} : acc[waddr][l*ACC_BITS +: ACC_BITS];
            assign acc_next[l*ACC_BITS +: ACC_BITS] = keep ? prior + centered[ACC_BITS-1:0] : prior;
        end
    endgenerate

    // the output phase: acc * MULTS[n - 1] into the requantizer (MULT 1: rounding, zero point, clamp);
    // without OVERLAP the count stays still while the sums drain
    wire [NW-1:0] drain_count = (OVERLAP != 0) ? held_count[rbank] : count;
    wire [NW-1:0] index = (drain_count == {NW{1'b0}}) ? {NW{1'b0}} : drain_count - 1'b1;
    /* verilator lint_off WIDTHEXPAND */
    wire [M_BITS-1:0] mult = MULTS[index * M_BITS +: M_BITS];
    /* verilator lint_on WIDTHEXPAND */
    wire [LANES*ACC_BITS-1:0] acc_out = acc[raddr];
    wire [LANES*PV-1:0] products;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_product
            wire signed [ACC_BITS-1:0] a = acc_out[l*ACC_BITS +: ACC_BITS];
            wire signed [PV-1:0] a_w = {{(PV-ACC_BITS){a[ACC_BITS-1]}}, a};
            wire signed [PV-1:0] m_w = {{(PV-M_BITS){1'b0}}, mult};
            assign products[l*PV +: PV] = a_w * m_w;
        end
    endgenerate

    wire rq_ready;
    wire out_fire = draining && rq_ready;

    always @(posedge clk) begin
        if (in_fire) begin
            acc[waddr] <= acc_next;
            if (first) begin
                keep_cur <= keep;
                count <= ((token == {TW{1'b0}}) ? {NW{1'b0}} : count) + {{(NW-1){1'b0}}, keep};
            end
            beat <= (beat == LAST_BEAT) ? {BW{1'b0}} : beat + 1'b1;
            if (beat == LAST_BEAT) begin
                token <= (token == LAST_TOKEN) ? {TW{1'b0}} : token + 1'b1;
                if (token == LAST_TOKEN) begin
                    full[wbank] <= 1'b1;
                    held_count[wbank] <= count_now;
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
            count    <= {NW{1'b0}};
        end
    end

    einhls_requant #(
        .SIZE(SIZE), .LANES(LANES), .IN_BITS(PV), .IN_SIGNED(1), .V_BITS(V_BITS),
        .OFFSET_ROM(0), .OFF_BITS(1), .OFFSET(0), .M_BITS(1), .MULT_ROM(0), .MULT(1),
        .SHIFT(SHIFT), .ZP(ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(products), .s_axis_tvalid(draining), .s_axis_tready(rq_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall
