// einhls_requant: elementwise requantization, LANES elements per beat.
//
//     v = x + offset[c]                              (V_BITS wide, see below)
//     y = clamp(rne(v * M[c], SHIFT) + ZP, LO, HI)   (the einhls rule, codegen/ir/requant.py)
//
// rne(p, s) = p / 2^s rounded half to even: p >>> s, plus one when the dropped bits are above one
// half, or exactly one half and the quotient is odd.  v * M is formed at full width
// (V_BITS + M_BITS + 1 bits, M unsigned), so nothing is lost before rounding.
//
// c is the element index inside the frame.  offset and M are either one constant (OFFSET, MULT)
// or one value per element in a ROM (OFFSET_ROM / MULT_ROM = 1: $readmemh of OFFSET_FILE /
// MULT_FILE, one word per beat holding LANES values, lane 0 in the low bits), read synchronously
// with the beat counter as address.  SHIFT must be below V_BITS + M_BITS (the emitter widens
// V_BITS when a tiny scale asks for more).
//
// V_BITS: x and the offset are sign-extended (or truncated) to V_BITS and added modulo 2^V_BITS.
// The caller chooses V_BITS so that the true v fits; the linear unit also relies on this to add
// its bias here modulo 2^ACC_BITS (exact because the final accumulator always fits ACC_BITS).
//
// Lanes after the last element of a frame are output as zero.  Pipeline: ROM read / input
// register -> v * M product register -> rounded and clamped output register; the whole pipeline
// advances when the output register is free (s_axis_tready = !m_axis_tvalid || m_axis_tready).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_requant #(
    parameter integer SIZE        = 8,      // elements per frame
    parameter integer LANES       = 1,      // elements per beat
    parameter integer IN_BITS     = 8,
    parameter integer IN_SIGNED   = 1,
    parameter integer V_BITS      = 9,      // width of v = x + offset
    parameter integer OFFSET_ROM  = 0,      // 1: one offset per element from OFFSET_FILE
    parameter integer OFF_BITS    = 8,      // width of one stored offset
    parameter signed [63:0] OFFSET = 0,     // the offset of every element when OFFSET_ROM = 0
    parameter         OFFSET_FILE = "offset.mem",
    parameter integer M_BITS      = 1,      // width of the unsigned multiplier
    parameter integer MULT_ROM    = 0,      // 1: one multiplier per element from MULT_FILE
    parameter [63:0]  MULT        = 1,      // the multiplier of every element when MULT_ROM = 0
    parameter         MULT_FILE   = "mult.mem",
    parameter integer SHIFT       = 0,
    parameter signed [63:0] ZP    = 0,
    parameter signed [63:0] LO    = -128,
    parameter signed [63:0] HI    = 127,
    parameter integer OUT_BITS    = 8
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

    localparam integer BEATS      = (SIZE + LANES - 1) / LANES;
    localparam integer LAST_LANES = SIZE - (BEATS - 1) * LANES;
    localparam integer BW         = (BEATS <= 2) ? 1 : $clog2(BEATS);
    localparam integer LAST_BEAT_I = BEATS - 1;
    localparam [BW-1:0] LAST_BEAT = LAST_BEAT_I[BW-1:0];
    localparam integer PW         = V_BITS + M_BITS + 1;           // exact width of v * M
    localparam integer QW         = PW - SHIFT + 1;                // rounded quotient (+1 for the carry)
    // clamping width: the rounded value plus ZP never overflows it, and ZP, LO and HI (codes of
    // the output type, so OUT_BITS + 1 bits signed) fit it too
    localparam integer CW         = (QW > OUT_BITS + 1 ? QW : OUT_BITS + 1) + 2;
    localparam integer XW         = IN_BITS + 1;                   // x as a signed number
    localparam integer OW         = (OFF_BITS > V_BITS ? OFF_BITS : V_BITS);

    localparam integer KW         = (V_BITS > 64 ? V_BITS : 64);
    localparam signed [KW-1:0] OFFSET_C = OFFSET;
    localparam signed [CW+63:0] ZP_X = ZP;     // sign-extended, then cut to CW bits
    localparam signed [CW+63:0] LO_X = LO;
    localparam signed [CW+63:0] HI_X = HI;
    localparam signed [CW-1:0]  ZP_C = ZP_X[CW-1:0];
    localparam signed [CW-1:0]  LO_C = LO_X[CW-1:0];
    localparam signed [CW-1:0]  HI_C = HI_X[CW-1:0];

    // ---------------------------------------------------------------- stage 1: input and ROMs
    wire en = !m_axis_tvalid || m_axis_tready;
    assign s_axis_tready = en;

    reg [BW-1:0]              in_beat = 0;
    reg                       valid1 = 1'b0;
    reg                       last1 = 1'b0;
    reg [LANES*IN_BITS-1:0]   x1 = 0;
    wire [LANES*V_BITS-1:0]   off1;           // offsets of the beat in stage 1, V_BITS each
    wire [LANES*M_BITS-1:0]   mult1;          // multipliers of the beat in stage 1

    always @(posedge clk) begin
        if (en) begin
            valid1 <= s_axis_tvalid;
            last1  <= in_beat == LAST_BEAT;
            x1     <= s_axis_tdata;
            if (s_axis_tvalid) begin
                in_beat <= (in_beat == LAST_BEAT) ? {BW{1'b0}} : in_beat + 1'b1;
            end
        end
        if (rst) begin
            valid1  <= 1'b0;
            in_beat <= {BW{1'b0}};
        end
    end

    genvar l;
    generate
        if (OFFSET_ROM != 0) begin : g_offset_rom
            reg [LANES*OFF_BITS-1:0] rom [0:BEATS-1];
            reg [LANES*OFF_BITS-1:0] word = 0;
            initial begin
                $readmemh(OFFSET_FILE, rom);
            end
            always @(posedge clk) begin
                if (en) begin
                    word <= rom[in_beat];
                end
            end
            for (l = 0; l < LANES; l = l + 1) begin : g_lane
                wire signed [OFF_BITS-1:0] o = word[l*OFF_BITS +: OFF_BITS];
                wire signed [OW-1:0] o_ext = o;   // sign extension
                assign off1[l*V_BITS +: V_BITS] = o_ext[V_BITS-1:0];
            end
        end else begin : g_offset_const
            for (l = 0; l < LANES; l = l + 1) begin : g_lane
                assign off1[l*V_BITS +: V_BITS] = OFFSET_C[V_BITS-1:0];
            end
        end

        if (MULT_ROM != 0) begin : g_mult_rom
            reg [LANES*M_BITS-1:0] rom [0:BEATS-1];
            reg [LANES*M_BITS-1:0] word = 0;
            initial begin
                $readmemh(MULT_FILE, rom);
            end
            always @(posedge clk) begin
                if (en) begin
                    word <= rom[in_beat];
                end
            end
            assign mult1 = word;
        end else begin : g_mult_const
            for (l = 0; l < LANES; l = l + 1) begin : g_lane
                assign mult1[l*M_BITS +: M_BITS] = MULT[M_BITS-1:0];
            end
        end
    endgenerate

    // ------------------------------------------------------- stage 2: v * M at full width
    reg valid2 = 1'b0;
    reg last2 = 1'b0;
    wire [LANES*PW-1:0] prod_next;
    reg  [LANES*PW-1:0] prod2 = 0;

    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_mul
            wire [IN_BITS-1:0] x_raw = x1[l*IN_BITS +: IN_BITS];
            wire signed [XW-1:0] x_s = (IN_SIGNED != 0) ? {x_raw[IN_BITS-1], x_raw} : {1'b0, x_raw};
            // x extended (or truncated) to V_BITS; addition modulo 2^V_BITS
            /* verilator lint_off UNUSEDSIGNAL */   // bits above V_BITS: modulo 2^V_BITS
            wire signed [(XW > V_BITS ? XW : V_BITS)-1:0] x_ext = x_s;
            /* verilator lint_on UNUSEDSIGNAL */
            wire signed [V_BITS-1:0] v = x_ext[V_BITS-1:0] + off1[l*V_BITS +: V_BITS];
            wire signed [M_BITS:0] m = {1'b0, mult1[l*M_BITS +: M_BITS]};
            wire signed [PW-1:0] p = v * m;
            assign prod_next[l*PW +: PW] = p;
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid2 <= valid1;
            last2  <= last1;
            prod2  <= prod_next;
        end
        if (rst) begin
            valid2 <= 1'b0;
        end
    end

    // ------------------------------------- stage 3: round half to even, zero point, clamp
    reg valid3 = 1'b0;
    wire [LANES*OUT_BITS-1:0] y_next;
    reg  [LANES*OUT_BITS-1:0] y3 = 0;

    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_round
            wire signed [PW-1:0] p = prod2[l*PW +: PW];
            wire signed [QW-1:0] r;
            if (SHIFT == 0) begin : g_exact
                assign r = p;
            end else begin : g_rne
                wire signed [PW-SHIFT-1:0] q = p[PW-1:SHIFT];     // floor(p / 2^SHIFT)
                wire                       half = p[SHIFT-1];      // dropped bits >= 1/2
                wire                       above;                  // dropped bits > 1/2
                if (SHIFT == 1) begin : g_s1
                    assign above = 1'b0;
                end else begin : g_sn
                    assign above = |p[SHIFT-2:0];
                end
                wire up = half && (above || q[0]);
                assign r = q + $signed({1'b0, up});
            end
            wire signed [CW-1:0] y = r + ZP_C;
            /* verilator lint_off UNUSEDSIGNAL */   // the clamped value fits OUT_BITS
            wire signed [CW-1:0] c = (y < LO_C) ? LO_C : (y > HI_C) ? HI_C : y;
            /* verilator lint_on UNUSEDSIGNAL */
            // lanes after the last element of the frame carry zeros
            wire pad = (l >= LAST_LANES) && last2;
            assign y_next[l*OUT_BITS +: OUT_BITS] = pad ? {OUT_BITS{1'b0}} : c[OUT_BITS-1:0];
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid3 <= valid2;
            y3     <= y_next;
        end
        if (rst) begin
            valid3 <= 1'b0;
        end
    end

    assign m_axis_tdata  = y3;
    assign m_axis_tvalid = valid3;

endmodule

`resetall
