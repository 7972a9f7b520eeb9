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
    parameter integer OUT_BITS    = 8,
    parameter integer LUTRAM      = 0      // 1: the x and e row buffers in LUT RAM (the scheduler decides)
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

    function automatic signed [63:0] lane_value(input [LANES*IN_BITS-1:0] word, input integer lane);
        reg [IN_BITS-1:0] raw;
        begin
            raw = word[lane*IN_BITS +: IN_BITS];
            lane_value = (IN_SIGNED != 0) ? {{(64-IN_BITS){raw[IN_BITS-1]}}, raw} : {{(64-IN_BITS){1'b0}}, raw};
        end
    endfunction

    // Three tokens are in flight: one arriving (buffer x, running maximum), one in the
    // exponentials and the division (reads x, writes e), one leaving (reads e).  x and e have two
    // banks each, used in turn, so counters suffice: `x_full` banks hold complete tokens the
    // exponential stage has not read yet, `e_full` banks hold exponentials and their reciprocal.
    localparam integer ADDR_W     = $clog2(2 * BEATS);
    localparam [ADDR_W-1:0] BEATS_A = BEATS[ADDR_W-1:0];

    // ---------------------------------------------------------------- input: buffer and maximum
    // where block RAM is what a design runs out of, the scheduler puts the row buffers in LUT RAM
    // (codegen/schedule/lutram.py); "auto" leaves them to synthesis, as without the attribute
    /* verilator lint_off UNUSEDPARAM */   // read by the ram_style attributes only
    localparam MEM_STYLE = (LUTRAM != 0) ? "distributed" : "auto";
    /* verilator lint_on UNUSEDPARAM */
    (* ram_style = MEM_STYLE *)
    reg [LANES*IN_BITS-1:0] xbuf [0:2*BEATS-1];
    reg [BW-1:0]            beat = 0;
    reg                     x_in = 1'b0;     // bank being filled
    reg [1:0]               x_full = 0;
    reg signed [IN_BITS:0]  top = 0;         // the running maximum
    reg signed [IN_BITS:0]  top_bank [0:1];
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
    assign s_axis_tready = x_full != 2'd2;
    wire in_fire = s_axis_tvalid && s_axis_tready;
    wire in_done = in_fire && beat == LAST_BEAT;
    wire [ADDR_W-1:0] in_addr = {{(ADDR_W-1){1'b0}}, x_in} * BEATS_A + beat;

    // ------------------------------------------------------- exponentials: 3-stage pipeline
    localparam [1:0] M_IDLE = 2'd0, M_EXP = 2'd1, M_DIV = 2'd2;
    reg [1:0]     mstate = M_IDLE;
    reg           x_rd = 1'b0;               // bank the exponential stage reads
    reg           e_wr = 1'b0;               // bank it writes
    reg [1:0]     e_full = 0;
    reg signed [IN_BITS:0] top_cur = 0;      // the maximum of the token in this stage
    reg [BW-1:0]  ebeat = 0;                 // beat issued into the pipeline
    reg           issue_e = 1'b0;            // still issuing beats of this token
    reg           v1 = 1'b0, v2 = 1'b0, v3 = 1'b0;
    reg           last1 = 1'b0, last2 = 1'b0, last3 = 1'b0;
    reg [BW-1:0]  a1 = 0, a2 = 0, a3 = 0;
    reg [LANES*IN_BITS-1:0] x1 = 0;
    reg [LANES*F-1:0]       r2 = 0;
    reg [LANES*ZW-1:0]      z2 = 0, z3 = 0;
    reg [LANES*(F+3)-1:0]   sq3 = 0;
    (* ram_style = MEM_STYLE *)
    reg [LANES*E_BITS-1:0]  ebuf [0:2*BEATS-1];
    reg [SUM_BITS-1:0]      total = 0;
    wire exp_start = mstate == M_IDLE && x_full != 2'd0 && e_full != 2'd2;
    wire x_release = issue_e && ebeat == LAST_BEAT;   // the last beat of x is read now
    wire [ADDR_W-1:0] x_rd_addr = {{(ADDR_W-1){1'b0}}, x_rd} * BEATS_A + ebeat;
    wire [ADDR_W-1:0] e_wr_addr = {{(ADDR_W-1){1'b0}}, e_wr} * BEATS_A + a3;

    wire [LANES*F-1:0]      r_next;
    wire [LANES*ZW-1:0]     z_next;
    wire [LANES*(F+3)-1:0]  sq_next;
    wire [LANES*E_BITS-1:0] e_now;
    wire [LANES*SUM_BITS-1:0] part_sum;

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_exp
            // stage 2: u, z and r
            /* verilator lint_off WIDTHTRUNC */  // 0 <= max - x < 2^IN_BITS
            wire [IN_BITS-1:0] d = top_cur - lane_value(x1, l);
            /* verilator lint_on WIDTHTRUNC */
            wire signed [63:0] u = ({1'b0, d} * EXP_MULT_S) >>> EXP_SHIFT;
            wire signed [63:0] z_full = u >>> F;
            /* verilator lint_off UNUSEDSIGNAL */  // z <= F + 1 fits ZW bits
            wire signed [63:0] z = (z_full > Z_MAX) ? Z_MAX : z_full;
            /* verilator lint_on UNUSEDSIGNAL */
            assign r_next[l*F +: F] = u[F-1:0];
            assign z_next[l*ZW +: ZW] = z[ZW-1:0];
            // stage 3: (B - r)^2 >> F
            /* verilator lint_off WIDTHTRUNC */  // 0 < B - r < 2^(F+1)
            wire [F:0] s = POLY_B_S - $signed({{(64-F){1'b0}}, r2[l*F +: F]});
            /* verilator lint_on WIDTHTRUNC */
            /* verilator lint_off UNUSEDSIGNAL */  // (B - r)^2 >> F < 2^(F+2)
            wire [2*F+1:0] sq = (s * s) >> F;
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
    /* verilator lint_off UNUSEDSIGNAL */  // the top bit is shifted out (NUM / total < 2^RECIP_BITS)
    reg [RQW-1:0]      quotient = 0;
    /* verilator lint_on UNUSEDSIGNAL */
    reg [DCW-1:0]      div_step = 0;
    reg [RECIP_BITS-1:0] recip_bank [0:1];
    wire [SUM_BITS:0]  div_shifted = {div_rem, num_bits[NUM_BITS-1]};
    wire               div_take = div_shifted >= {1'b0, total};
    wire               div_done = mstate == M_DIV && div_step == NUM_BITS[DCW-1:0] - 1'b1;
    wire [RQW-1:0]     quotient_next = {quotient[RQW-2:0], div_take};

    // --------------------------------------------------------------- output pipeline (2 stages)
    wire rq_ready;
    reg  valid_p = 1'b0;
    wire en = !valid_p || rq_ready;
    reg [BW-1:0] obeat = 0;
    reg          e_rd = 1'b0;                // bank the output stage reads
    wire issue_o = e_full != 2'd0 && en;
    wire out_done = issue_o && obeat == LAST_BEAT;
    wire [ADDR_W-1:0] e_rd_addr = {{(ADDR_W-1){1'b0}}, e_rd} * BEATS_A + obeat;

    always @(posedge clk) begin
        // input stage
        if (in_fire) begin
            xbuf[in_addr] <= s_axis_tdata;
            if (beat == {BW{1'b0}} || beat_max > top) top <= beat_max[IN_BITS:0];
            beat <= (beat == LAST_BEAT) ? {BW{1'b0}} : beat + 1'b1;
            if (beat == LAST_BEAT) begin
                top_bank[x_in] <= (beat == {BW{1'b0}} || beat_max > top) ? beat_max[IN_BITS:0] : top;
                x_in <= !x_in;
            end
        end
        x_full <= x_full + {1'b0, in_done} - {1'b0, x_release};
        e_full <= e_full + {1'b0, div_done} - {1'b0, out_done};

        // the exponential pipeline never stalls
        v1 <= issue_e;
        last1 <= x_release;
        a1 <= ebeat;
        x1 <= xbuf[x_rd_addr];
        v2 <= v1; last2 <= last1; a2 <= a1; r2 <= r_next; z2 <= z_next;
        v3 <= v2; last3 <= last2; a3 <= a2; z3 <= z2; sq3 <= sq_next;
        if (v3) begin
            ebuf[e_wr_addr] <= e_now;
            total <= total + part_sum[(LANES-1)*SUM_BITS +: SUM_BITS];
        end
        if (issue_e) begin
            ebeat <= (ebeat == LAST_BEAT) ? {BW{1'b0}} : ebeat + 1'b1;
            if (ebeat == LAST_BEAT) begin
                issue_e <= 1'b0;
                x_rd    <= !x_rd;
            end
        end
        case (mstate)
            M_IDLE: begin
                if (exp_start) begin
                    mstate  <= M_EXP;
                    issue_e <= 1'b1;
                    ebeat   <= {BW{1'b0}};
                    total   <= {SUM_BITS{1'b0}};
                    top_cur <= top_bank[x_rd];
                end
            end
            M_EXP: begin
                if (v3 && last3) begin
                    mstate   <= M_DIV;
                    num_bits <= NUM[NUM_BITS-1:0];
                    div_rem  <= {SUM_BITS{1'b0}};
                    div_step <= {DCW{1'b0}};
                end
            end
            default: begin  // M_DIV
                div_rem  <= div_take ? div_shifted[SUM_BITS-1:0] - total : div_shifted[SUM_BITS-1:0];
                quotient <= quotient_next;
                num_bits <= num_bits << 1;
                div_step <= div_step + 1'b1;
                if (div_done) begin
                    recip_bank[e_wr] <= quotient_next[RECIP_BITS-1:0];
                    e_wr   <= !e_wr;
                    mstate <= M_IDLE;
                end
            end
        endcase

        // output stage: beats are issued into the pipeline below
        if (issue_o) begin
            obeat <= (obeat == LAST_BEAT) ? {BW{1'b0}} : obeat + 1'b1;
            if (obeat == LAST_BEAT) e_rd <= !e_rd;
        end

        if (rst) begin
            beat    <= {BW{1'b0}};
            x_in    <= 1'b0;
            x_full  <= 2'd0;
            mstate  <= M_IDLE;
            x_rd    <= 1'b0;
            e_wr    <= 1'b0;
            e_full  <= 2'd0;
            issue_e <= 1'b0;
            v1 <= 1'b0; v2 <= 1'b0; v3 <= 1'b0;
            obeat   <= {BW{1'b0}};
            e_rd    <= 1'b0;
        end
    end

    // stage 1: e of the beat and this token's reciprocal
    reg                     valid_o1 = 1'b0;
    reg [LANES*E_BITS-1:0]  e1 = 0;
    reg [RECIP_BITS-1:0]    recip1 = 0;
    always @(posedge clk) begin
        if (en) begin
            valid_o1 <= issue_o;
            e1       <= ebuf[e_rd_addr];
            recip1   <= recip_bank[e_rd];
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
