// einhls_softmax: integer softmax over the SIZE elements of each token (I-BERT's i-exp in base 2),
// LANES elements per beat.
//
//     d  = max - x,  u = (d * EXP_MULT) >> EXP_SHIFT,  z = min(u >> F, F + 1),  r = u mod 2^F
//     e  = (((A * ((B - r)^2 >> F)) >> F) + C0) >> z             2^-(u / 2^F), F fraction bits
//     recip = NUM / sum(e)                                       (once per token)
//     y  = clamp(rne(e * recip, K) + ZP, LO, HI)                 einhls_requant (MULT 1, SHIFT K)
// exactly as codegen/ir/nonlinear.py IntSoftmax.reference.
//
// Phases of one token: input (store, running maximum; one beat per cycle), exponentials (one
// beat per cycle through a 3-stage pipeline: u, square, polynomial and shift; they are stored and
// summed), the reciprocal (restoring division, one quotient bit per cycle, NUM_BITS cycles), and
// output (one beat per cycle: buffer read, e * recip, then einhls_requant).  The phases do not
// overlap: a token takes about 3 * BEATS + NUM_BITS + 6 cycles.  The output pipeline carries the
// reciprocal with each beat, so the next token may start while this one waits on m_axis_tready.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_softmax #(
    parameter integer SIZE        = 8,
    parameter integer LANES       = 1,
    parameter integer IN_BITS     = 8,
    parameter integer IN_SIGNED   = 1,
    parameter integer F           = 15,
    parameter [63:0]  EXP_MULT    = 75639,
    parameter integer EXP_SHIFT   = 4,
    parameter [63:0]  POLY_A      = 5644,
    parameter [63:0]  POLY_B      = 63962,
    parameter [63:0]  POLY_C      = 11272,
    parameter integer E_BITS      = 16,     // bits of e (at most the maximum's, e at u = 0)
    parameter integer SUM_BITS    = 19,
    parameter [63:0]  NUM         = 64'd8589934592,  // round(2^K / output scale)
    parameter integer NUM_BITS    = 34,
    parameter integer RECIP_BITS  = 18,     // bits of NUM / sum
    parameter integer K           = 25,
    parameter signed [63:0] ZP    = 0,
    parameter signed [63:0] LO    = 0,
    parameter signed [63:0] HI    = 255,
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
    localparam integer ZW         = $clog2(F + 2) + 1;        // z in [0, F + 1]
    localparam integer PV_BITS    = E_BITS + RECIP_BITS + 1;  // e * recip, signed for einhls_requant
    localparam integer DCW        = $clog2(NUM_BITS + 1) + 1;
    localparam integer RQW        = (RECIP_BITS < 2) ? 2 : RECIP_BITS;
    localparam signed [63:0] EXP_MULT_S = $signed({1'b0, EXP_MULT[62:0]});
    localparam signed [63:0] POLY_A_S = $signed({1'b0, POLY_A[62:0]});
    localparam signed [63:0] POLY_B_S = $signed({1'b0, POLY_B[62:0]});
    localparam signed [63:0] POLY_C_S = $signed({1'b0, POLY_C[62:0]});
    localparam signed [63:0] Z_MAX = F + 1;

    localparam [1:0] S_IN = 2'd0, S_EXP = 2'd1, S_DIV = 2'd2, S_OUT = 2'd3;
    reg [1:0] state = S_IN;

    function automatic signed [63:0] lane_value(input [LANES*IN_BITS-1:0] word, input integer lane);
        reg [IN_BITS-1:0] raw;
        begin
            raw = word[lane*IN_BITS +: IN_BITS];
            lane_value = (IN_SIGNED != 0) ? {{(64-IN_BITS){raw[IN_BITS-1]}}, raw} : {{(64-IN_BITS){1'b0}}, raw};
        end
    endfunction

    // ---------------------------------------------------------------- input: buffer and maximum
    reg [LANES*IN_BITS-1:0] xbuf [0:BEATS-1];
    reg [BW-1:0]            beat = 0;
    reg signed [IN_BITS:0]  top = 0;         // the running maximum
    reg signed [63:0]       beat_max;
    integer                 li;
    always @* begin
        beat_max = lane_value(s_axis_tdata, 0);
        for (li = 1; li < LANES; li = li + 1) begin
            if ((li < LAST_LANES || beat != LAST_BEAT) && lane_value(s_axis_tdata, li) > beat_max) begin
                beat_max = lane_value(s_axis_tdata, li);
            end
        end
    end
    assign s_axis_tready = state == S_IN;

    // ------------------------------------------------------- exponentials: 3-stage pipeline
    reg [BW-1:0]  ebeat = 0;                 // beat issued into the pipeline
    reg           issue_e = 1'b0;            // still issuing beats of this token
    reg           v1 = 1'b0, v2 = 1'b0, v3 = 1'b0;
    reg           last1 = 1'b0, last2 = 1'b0, last3 = 1'b0;
    reg [BW-1:0]  a1 = 0, a2 = 0, a3 = 0;
    reg [LANES*IN_BITS-1:0] x1 = 0;
    reg [LANES*F-1:0]       r2 = 0;
    reg [LANES*ZW-1:0]      z2 = 0, z3 = 0;
    reg [LANES*(F+3)-1:0]   sq3 = 0;
    reg [LANES*E_BITS-1:0]  ebuf [0:BEATS-1];
    reg [SUM_BITS-1:0]      total = 0;

    wire [LANES*F-1:0]      r_next;
    wire [LANES*ZW-1:0]     z_next;
    wire [LANES*(F+3)-1:0]  sq_next;
    wire [LANES*E_BITS-1:0] e_now;
    wire [LANES*SUM_BITS-1:0] part_sum;

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_exp
            // stage 2: u, z and r
            wire signed [63:0] d = top - lane_value(x1, l);
            wire signed [63:0] u = (d * EXP_MULT_S) >>> EXP_SHIFT;
            wire signed [63:0] z_full = u >>> F;
            /* verilator lint_off UNUSEDSIGNAL */  // z <= F + 1 fits ZW bits
            wire signed [63:0] z = (z_full > Z_MAX) ? Z_MAX : z_full;
            /* verilator lint_on UNUSEDSIGNAL */
            assign r_next[l*F +: F] = u[F-1:0];
            assign z_next[l*ZW +: ZW] = z[ZW-1:0];
            // stage 3: (B - r)^2 >> F
            wire signed [63:0] s = POLY_B_S - $signed({{(64-F){1'b0}}, r2[l*F +: F]});
            /* verilator lint_off UNUSEDSIGNAL */  // (B - r)^2 >> F < 2^(F+2)
            wire signed [63:0] sq = (s * s) >>> F;
            /* verilator lint_on UNUSEDSIGNAL */
            assign sq_next[l*(F+3) +: F+3] = sq[F+2:0];
            // after stage 3: the polynomial and the shift by z; lanes after the last element are 0
            wire signed [63:0] sq_w = {{(64-F-3){1'b0}}, sq3[l*(F+3) +: F+3]};
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [63:0] e0 = ((POLY_A_S * sq_w) >>> F) + POLY_C_S;
            wire [63:0] e = e0 >> z3[l*ZW +: ZW];
            /* verilator lint_on UNUSEDSIGNAL */
            wire pad = (l >= LAST_LANES) && last3;
            assign e_now[l*E_BITS +: E_BITS] = pad ? {E_BITS{1'b0}} : e[E_BITS-1:0];
            wire [SUM_BITS-1:0] prev = (l == 0) ? {SUM_BITS{1'b0}} : part_sum[(l-1)*SUM_BITS +: SUM_BITS];
            assign part_sum[l*SUM_BITS +: SUM_BITS] = prev + e_now[l*E_BITS +: E_BITS];
        end
    endgenerate

    // ---------------------------------------------------------------- reciprocal NUM / total
    reg [NUM_BITS-1:0] num_bits = 0;         // NUM, consumed from the top bit
    reg [SUM_BITS-1:0] div_rem = 0;          // always below the divisor
    reg [RQW-1:0]      quotient = 0;         // NUM / total < 2^RECIP_BITS: higher bits are 0
    reg [DCW-1:0]      div_step = 0;
    wire [SUM_BITS:0]  div_shifted = {div_rem, num_bits[NUM_BITS-1]};
    wire               div_take = div_shifted >= {1'b0, total};

    // --------------------------------------------------------------- output pipeline (2 stages)
    wire rq_ready;
    reg  valid_p = 1'b0;
    wire en = !valid_p || rq_ready;
    reg [BW-1:0] obeat = 0;
    wire issue_o = state == S_OUT && en;

    always @(posedge clk) begin
        // the exponential pipeline never stalls
        v1 <= issue_e;
        last1 <= issue_e && ebeat == LAST_BEAT;
        a1 <= ebeat;
        x1 <= xbuf[ebeat];
        v2 <= v1; last2 <= last1; a2 <= a1; r2 <= r_next; z2 <= z_next;
        v3 <= v2; last3 <= last2; a3 <= a2; z3 <= z2; sq3 <= sq_next;
        if (v3) begin
            ebuf[a3] <= e_now;
            total <= total + part_sum[(LANES-1)*SUM_BITS +: SUM_BITS];
        end
        case (state)
            S_IN: begin
                if (s_axis_tvalid) begin
                    xbuf[beat] <= s_axis_tdata;
                    if (beat == {BW{1'b0}} || beat_max > top) top <= beat_max[IN_BITS:0];
                    beat <= (beat == LAST_BEAT) ? {BW{1'b0}} : beat + 1'b1;
                    if (beat == LAST_BEAT) begin
                        state   <= S_EXP;
                        issue_e <= 1'b1;
                        ebeat   <= {BW{1'b0}};
                        total   <= {SUM_BITS{1'b0}};
                    end
                end
            end
            S_EXP: begin
                if (issue_e) begin
                    ebeat <= (ebeat == LAST_BEAT) ? {BW{1'b0}} : ebeat + 1'b1;
                    if (ebeat == LAST_BEAT) issue_e <= 1'b0;
                end
                if (v3 && last3) begin
                    state    <= S_DIV;
                    num_bits <= NUM[NUM_BITS-1:0];
                    div_rem  <= {SUM_BITS{1'b0}};
                    div_step <= {DCW{1'b0}};
                end
            end
            S_DIV: begin
                div_rem  <= div_take ? div_shifted[SUM_BITS-1:0] - total : div_shifted[SUM_BITS-1:0];
                quotient <= {quotient[RQW-2:0], div_take};
                num_bits <= num_bits << 1;
                div_step <= div_step + 1'b1;
                if (div_step == NUM_BITS[DCW-1:0] - 1'b1) state <= S_OUT;
            end
            default: begin  // S_OUT
                if (en) begin
                    obeat <= (obeat == LAST_BEAT) ? {BW{1'b0}} : obeat + 1'b1;
                    if (obeat == LAST_BEAT) state <= S_IN;
                end
            end
        endcase
        if (rst) begin
            state   <= S_IN;
            beat    <= {BW{1'b0}};
            obeat   <= {BW{1'b0}};
            issue_e <= 1'b0;
            v1 <= 1'b0; v2 <= 1'b0; v3 <= 1'b0;
        end
    end

    // stage 1: e of the beat and this token's reciprocal
    reg                     valid_o1 = 1'b0;
    reg [LANES*E_BITS-1:0]  e1 = 0;
    reg [RECIP_BITS-1:0]    recip1 = 0;
    always @(posedge clk) begin
        if (en) begin
            valid_o1 <= issue_o;
            e1       <= ebuf[obeat];
            recip1   <= quotient[RECIP_BITS-1:0];
        end
        if (rst) valid_o1 <= 1'b0;
    end

    // stage 2: e * recip
    reg [LANES*PV_BITS-1:0] p2 = 0;
    wire [LANES*PV_BITS-1:0] p_next;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_prod
            wire [PV_BITS-1:0] e_w = {{(PV_BITS-E_BITS){1'b0}}, e1[l*E_BITS +: E_BITS]};
            wire [PV_BITS-1:0] r_w = {{(PV_BITS-RECIP_BITS){1'b0}}, recip1};
            assign p_next[l*PV_BITS +: PV_BITS] = e_w * r_w;
        end
    endgenerate
    always @(posedge clk) begin
        if (en) begin
            valid_p <= valid_o1;
            p2      <= p_next;
        end
        if (rst) valid_p <= 1'b0;
    end

    einhls_requant #(
        .SIZE(SIZE), .LANES(LANES), .IN_BITS(PV_BITS), .IN_SIGNED(1), .V_BITS(PV_BITS),
        .OFFSET_ROM(0), .OFF_BITS(1), .OFFSET(0), .M_BITS(1), .MULT_ROM(0), .MULT(1),
        .SHIFT(K), .ZP(ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(p2), .s_axis_tvalid(valid_p), .s_axis_tready(rq_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall
