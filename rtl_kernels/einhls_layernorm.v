// einhls_layernorm: integer LayerNorm over the SIZE features of each token, LANES per beat.
//
//     s1 = sum x,  s2 = sum x^2,  V = (SIZE s2 - s1^2 + EPS_Q) << 2 SQ
//     r  = max(isqrt(V), 1),  recip = 2^RB / r                    (once per token)
//     n  = ((SIZE x - s1) * recip) >>> (RB - NF - SQ)             (x - mean) / std, NF fraction bits
//     v  = n * g[c] + b[c]                                        (V_BITS, signed)
//     y  = clamp(rne(v * MULT, SHIFT) + ZP, LO, HI)               einhls_requant, the einhls rule
// exactly as codegen/ir/nonlinear.py IntLayerNorm.reference.  g and b are ROMs ($readmemh of
// GAMMA_FILE / BETA_FILE: one word per beat, LANES values, lane 0 in the low bits).
//
// SQ extra bits give the square root SQ fraction bits (small variances stay accurate).
//
// A token is stored in a buffer while s1 and s2 accumulate (one beat per cycle); then the square
// root runs one result bit per cycle (ROOT_BITS cycles, the restoring algorithm), the reciprocal
// one quotient bit per cycle (RB + 1 cycles, restoring division), and the output pass issues one
// beat per cycle into a 3-stage pipeline (buffer and ROM read, n, v) followed by einhls_requant.
// The phases of one token do not overlap, so a token takes about
// 2 * BEATS + ROOT_BITS + RB + 4 cycles.  The pipeline carries s1 and recip with each beat, so
// the next token may start while the last beats of this one wait on m_axis_tready.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_layernorm #(
    parameter integer SIZE        = 8,
    parameter integer LANES       = 1,
    parameter integer IN_BITS     = 8,
    parameter integer IN_SIGNED   = 1,
    parameter signed [63:0] EPS_Q = 0,
    parameter integer RB          = 42,     // reciprocal 2^RB / r
    parameter integer NF          = 12,     // fraction bits of n
    parameter integer SQ          = 16,     // fraction bits of the square root
    parameter integer ROOT_BITS   = 26,     // half the bits of V, rounded up
    parameter integer G_BITS      = 16,
    parameter integer B_BITS      = 16,
    parameter         GAMMA_FILE  = "gamma.mem",
    parameter         BETA_FILE   = "beta.mem",
    parameter integer N_BITS      = 16,     // bits of n (signed)
    parameter integer V_BITS      = 33,     // bits of v = n * g + b
    parameter integer M_BITS      = 16,
    parameter [63:0]  MULT        = 40961,
    parameter integer SHIFT       = 39,
    parameter signed [63:0] ZP    = 0,
    parameter signed [63:0] LO    = -128,
    parameter signed [63:0] HI    = 127,
    parameter integer OUT_BITS    = 8,
    parameter integer LUTRAM      = 0      // 1: row buffer in LUT RAM (the scheduler decides)
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
    localparam integer OPW        = 2 * ROOT_BITS + 2;   // square root working width
    localparam integer QB         = RB + 1;              // quotient bits of 2^RB / r
    localparam integer CW         = (QB > 1 ? $clog2(QB + 1) : 1) + 1;
    localparam integer SZW        = $clog2(SIZE + 1) + 1;
    localparam integer SIZE_I     = SIZE;
    localparam signed [SZW-1:0] SIZE_N = SIZE_I[SZW-1:0];
    localparam integer DEV_BITS   = IN_BITS + $clog2(SIZE + 1) + 1;   // C x - s1
    localparam integer S1_BITS    = IN_BITS + 2 + $clog2(SIZE + 1);
    localparam integer S2_BITS    = 2 * IN_BITS + 2 + $clog2(SIZE + 1);

    localparam integer BANKS      = 3;                   // input | variance and root | output
    localparam integer ADDR_W     = $clog2(BANKS * BEATS);
    localparam [ADDR_W-1:0] BEATS_A = BEATS[ADDR_W-1:0];

    // Three tokens are in flight, each in a bank of the row buffer: one arriving (sums), one in
    // the square root and division, one leaving.  Banks are used in turn, so counters suffice:
    // `occupied` banks hold tokens that have arrived and not yet left, `ready` of them have their
    // reciprocal.  The stages hand over through registers (the sums, the per-bank s1 and recip).

    // ---------------------------------------------------------------- input: buffer and sums
    // where block RAM is what a design runs out of, the scheduler puts this buffer in LUT RAM
    // (codegen/schedule/lutram.py); "auto" leaves it to synthesis, as without the attribute
    /* verilator lint_off UNUSEDPARAM */   // read by the ram_style attribute only
    localparam MEM_STYLE = (LUTRAM != 0) ? "distributed" : "auto";
    /* verilator lint_on UNUSEDPARAM */
    (* ram_style = MEM_STYLE *)
    reg [LANES*IN_BITS-1:0] xbuf [0:BANKS*BEATS-1];
    reg [BW-1:0]            beat = 0;
    reg [1:0]               in_bank = 0;
    reg [1:0]               occupied = 0;
    reg signed [S1_BITS-1:0] s1 = 0;       // exact widths: sums of SIZE codes and squares
    reg signed [S2_BITS-1:0] s2 = 0;
    reg                     hand_valid = 1'b0;  // sums of a complete token, waiting for the root stage
    reg signed [S1_BITS-1:0] s1_hand = 0;
    reg signed [S2_BITS-1:0] s2_hand = 0;
    reg [1:0]               hand_bank = 0;
    /* verilator lint_off UNUSEDSIGNAL */  // a beat's sums fit S1_BITS / S2_BITS
    wire signed [63:0]      beat_s1;
    wire signed [63:0]      beat_s2;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [LANES*64-1:0]     part_s1;
    wire [LANES*64-1:0]     part_s2;
    wire in_last = beat == LAST_BEAT;
    // a bank is free while fewer than BANKS tokens are stored; a token's last beat also waits
    // for the hand-over register
    assign s_axis_tready = occupied != BANKS[1:0] && !(in_last && hand_valid);
    wire in_fire = s_axis_tvalid && s_axis_tready;
    wire in_done = in_fire && in_last;

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_sum
            wire [IN_BITS-1:0] raw = s_axis_tdata[l*IN_BITS +: IN_BITS];
            wire signed [63:0] x = (IN_SIGNED != 0) ? {{(64-IN_BITS){raw[IN_BITS-1]}}, raw}
                                                    : {{(64-IN_BITS){1'b0}}, raw};
            wire use_lane = (l < LAST_LANES) || !in_last;
            wire signed [63:0] x_used = use_lane ? x : 64'sd0;
            wire signed [63:0] prev1 = (l == 0) ? 64'sd0 : $signed(part_s1[(l-1)*64 +: 64]);
            wire signed [63:0] prev2 = (l == 0) ? 64'sd0 : $signed(part_s2[(l-1)*64 +: 64]);
            assign part_s1[l*64 +: 64] = prev1 + x_used;
            assign part_s2[l*64 +: 64] = prev2 + x_used * x_used;
        end
    endgenerate
    assign beat_s1 = part_s1[(LANES-1)*64 +: 64];
    assign beat_s2 = part_s2[(LANES-1)*64 +: 64];
    wire [ADDR_W-1:0] in_addr = in_bank * BEATS_A + beat;

    // ------------------------------------------------ per token: variance, square root, reciprocal
    localparam [1:0] M_IDLE = 2'd0, M_SQRT = 2'd1, M_DIV = 2'd2;
    reg [1:0] mstate = M_IDLE;
    /* verilator lint_off UNUSEDSIGNAL */  // V < 2^(2 ROOT_BITS)
    wire signed [63:0] var_now = (SIZE_N * s2_hand - s1_hand * s1_hand + EPS_Q) <<< (2 * SQ);
    /* verilator lint_on UNUSEDSIGNAL */
    reg  [OPW-1:0]     op_rem = 0;       // what is left of V
    reg  [OPW-1:0]     root = 0;         // the result, built from the top bit (res in the algorithm)
    reg  [OPW-1:0]     one = 0;          // 4^k of the current step
    reg  [QB-2:0]      recip = 0;        // quotient bits so far (the last one joins at the end)
    reg  [ROOT_BITS:0] div_rem = 0;      // always below the divisor
    reg  [CW-1:0]      div_step = 0;
    reg signed [S1_BITS-1:0] s1_tok = 0; // s1 of the token in this stage
    reg  [1:0]         m_bank = 0;
    reg signed [S1_BITS-1:0] s1_bank [0:BANKS-1];
    reg  [QB-1:0]      recip_bank [0:BANKS-1];
    reg  [1:0]         ready = 0;        // tokens with their reciprocal, waiting to leave
    wire [OPW-1:0]     trial = root + one;
    wire [ROOT_BITS:0] divisor = (root[ROOT_BITS:0] == 0) ? {{ROOT_BITS{1'b0}}, 1'b1} : root[ROOT_BITS:0];
    wire [ROOT_BITS+1:0] div_shifted = {div_rem[ROOT_BITS:0], (div_step == 0)};  // 2^RB: one 1, then 0s
    wire               div_take = div_shifted >= {1'b0, divisor};
    wire               math_take = mstate == M_IDLE && hand_valid;
    wire               math_done = mstate == M_DIV && div_step == QB[CW-1:0] - 1'b1;

    // ------------------------------------------------------------ output pipeline (3 stages)
    wire rq_ready;
    reg  valid3 = 1'b0;
    wire en = !valid3 || rq_ready;

    reg [BW-1:0] obeat = 0;
    reg [1:0]    out_bank = 0;
    wire issue = ready != 2'd0 && en;
    wire out_done = issue && obeat == LAST_BEAT;
    wire [ADDR_W-1:0] out_addr = out_bank * BEATS_A + obeat;

    function automatic [1:0] next_bank(input [1:0] b);
        next_bank = (b == BANKS[1:0] - 2'd1) ? 2'd0 : b + 2'd1;
    endfunction

    always @(posedge clk) begin
        // input stage
        if (in_fire) begin
            xbuf[in_addr] <= s_axis_tdata;
            beat <= in_last ? {BW{1'b0}} : beat + 1'b1;
            if (in_last) begin
                s1 <= {S1_BITS{1'b0}};
                s2 <= {S2_BITS{1'b0}};
                s1_hand <= s1 + beat_s1[S1_BITS-1:0];
                s2_hand <= s2 + beat_s2[S2_BITS-1:0];
                hand_bank <= in_bank;
                in_bank <= next_bank(in_bank);
            end else begin
                s1 <= s1 + beat_s1[S1_BITS-1:0];
                s2 <= s2 + beat_s2[S2_BITS-1:0];
            end
        end
        if (in_done) begin
            hand_valid <= 1'b1;
        end else if (math_take) begin
            hand_valid <= 1'b0;
        end
        occupied <= occupied + {1'b0, in_done} - {1'b0, out_done};
        ready <= ready + {1'b0, math_done} - {1'b0, out_done};

        // variance, square root (one bit per cycle) and reciprocal (one quotient bit per cycle)
        case (mstate)
            M_IDLE: begin
                if (hand_valid) begin
                    op_rem <= var_now[OPW-1:0];
                    root   <= {OPW{1'b0}};
                    one    <= {{(OPW-1){1'b0}}, 1'b1} << (2 * (ROOT_BITS - 1));
                    s1_tok <= s1_hand;
                    m_bank <= hand_bank;
                    mstate <= M_SQRT;
                end
            end
            M_SQRT: begin
                if (op_rem >= trial) begin
                    op_rem <= op_rem - trial;
                    root   <= (root >> 1) + one;
                end else begin
                    root   <= root >> 1;
                end
                one <= one >> 2;
                if (one == {{(OPW-1){1'b0}}, 1'b1}) begin
                    mstate   <= M_DIV;
                    div_rem  <= 0;
                    div_step <= 0;
                end
            end
            default: begin  // M_DIV
                div_rem  <= div_take ? div_shifted[ROOT_BITS:0] - divisor : div_shifted[ROOT_BITS:0];
                recip    <= {recip[QB-3:0], div_take};
                div_step <= div_step + 1'b1;
                if (math_done) begin
                    s1_bank[m_bank]    <= s1_tok;
                    recip_bank[m_bank] <= {recip, div_take};
                    mstate <= M_IDLE;
                end
            end
        endcase

        // output stage: beats are issued into the pipeline below
        if (issue) begin
            obeat <= (obeat == LAST_BEAT) ? {BW{1'b0}} : obeat + 1'b1;
            if (obeat == LAST_BEAT) out_bank <= next_bank(out_bank);
        end

        if (rst) begin
            beat       <= {BW{1'b0}};
            in_bank    <= 2'd0;
            occupied   <= 2'd0;
            hand_valid <= 1'b0;
            s1         <= {S1_BITS{1'b0}};
            s2         <= {S2_BITS{1'b0}};
            mstate     <= M_IDLE;
            ready      <= 2'd0;
            obeat      <= {BW{1'b0}};
            out_bank   <= 2'd0;
        end
    end

    // stage 1: buffer and ROM reads, with this token's s1 and reciprocal
    // (no attribute on the ROMs: Yosys maps a ROM in LUT RAM nowhere, and these shallow ones to
    // LUT logic already, 134 LUTs for 384 x 16 bits)
    reg [LANES*G_BITS-1:0]  grom [0:BEATS-1];
    reg [LANES*B_BITS-1:0]  brom [0:BEATS-1];
    initial begin
        $readmemh(GAMMA_FILE, grom);
        $readmemh(BETA_FILE, brom);
    end
    reg                     valid1 = 1'b0;
    reg [LANES*IN_BITS-1:0] x1 = 0;
    reg [LANES*G_BITS-1:0]  g1 = 0;
    reg [LANES*B_BITS-1:0]  b1 = 0;
    reg signed [S1_BITS-1:0] s1_1 = 0;
    reg [QB-1:0]            recip1 = 0;
    always @(posedge clk) begin
        if (en) begin
            valid1 <= issue;
            x1     <= xbuf[out_addr];
            g1     <= grom[obeat];
            b1     <= brom[obeat];
            s1_1   <= s1_bank[out_bank];
            recip1 <= recip_bank[out_bank];
        end
        if (rst) valid1 <= 1'b0;
    end

    // stage 2: n = ((SIZE x - s1) * recip) >>> (RB - NF - SQ), every width exact
    reg                    valid2 = 1'b0;
    reg [LANES*N_BITS-1:0] n2 = 0;
    reg [LANES*G_BITS-1:0] g2 = 0;
    reg [LANES*B_BITS-1:0] b2 = 0;
    wire [LANES*N_BITS-1:0] n_next;
    wire signed [QB:0]     recip1_s = {1'b0, recip1};
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_norm
            wire [IN_BITS-1:0] raw = x1[l*IN_BITS +: IN_BITS];
            wire signed [IN_BITS:0] x = (IN_SIGNED != 0) ? {raw[IN_BITS-1], raw} : {1'b0, raw};
            /* verilator lint_off WIDTHTRUNC */  // |SIZE x - s1| <= SIZE * span fits DEV_BITS
            wire signed [DEV_BITS-1:0] dev = SIZE_N * x - s1_1;
            /* verilator lint_on WIDTHTRUNC */
            wire signed [DEV_BITS+QB:0] t = dev * recip1_s;
            /* verilator lint_off UNUSEDSIGNAL */  // n fits N_BITS
            wire signed [DEV_BITS+QB:0] n = t >>> (RB - NF - SQ);
            /* verilator lint_on UNUSEDSIGNAL */
            assign n_next[l*N_BITS +: N_BITS] = n[N_BITS-1:0];
        end
    endgenerate
    always @(posedge clk) begin
        if (en) begin
            valid2 <= valid1;
            n2     <= n_next;
            g2     <= g1;
            b2     <= b1;
        end
        if (rst) valid2 <= 1'b0;
    end

    // stage 3: v = n * g + b
    reg  [LANES*V_BITS-1:0] v3 = 0;
    wire [LANES*V_BITS-1:0] v_next;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_affine
            wire signed [N_BITS-1:0] n = n2[l*N_BITS +: N_BITS];
            wire signed [G_BITS-1:0] g = g2[l*G_BITS +: G_BITS];
            wire signed [B_BITS-1:0] b = b2[l*B_BITS +: B_BITS];
            wire signed [V_BITS-1:0] v = n * g + b;   // fits V_BITS (n g + b, exact)
            assign v_next[l*V_BITS +: V_BITS] = v;
        end
    endgenerate
    always @(posedge clk) begin
        if (en) begin
            valid3 <= valid2;
            v3     <= v_next;
        end
        if (rst) valid3 <= 1'b0;
    end

    einhls_requant #(
        .SIZE(SIZE), .LANES(LANES), .IN_BITS(V_BITS), .IN_SIGNED(1), .V_BITS(V_BITS),
        .OFFSET_ROM(0), .OFF_BITS(1), .OFFSET(0), .M_BITS(M_BITS), .MULT_ROM(0), .MULT(MULT),
        .SHIFT(SHIFT), .ZP(ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(v3), .s_axis_tvalid(valid3), .s_axis_tready(rq_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall
