// einhls_butterfly: a butterfly layer of STAGES stages on P parallel butterfly units
// (docs/hardware.md, "Butterfly unit"; codegen/ir/butterfly.py for the arithmetic and
// codegen/schedule/butterfly.py for the memory layout and schedule this module implements).
//
//   s_axis (IN_LANES) -> einhls_lanes -> IN buffer (2 frames, 2P banks)
//     -> stage 0 .. STAGES-1 on P units, each through the working buffer WK (2 halves, ping-pong)
//     -> OUT buffer (2 frames, 2P banks) -> drain -> einhls_lanes -> m_axis (OUT_LANES)
//
// Elements.  The input frame (K codes) is element local = 0..K-1 of a vector of N (padding never
// matters: its stage-0 twiddles are zero), copied STACKS times: NT = STACKS*N elements,
// e = stack*N + local.  The output is elements 0..M-1 of the last stage.
//
// Banks.  2P banks; element e lives in bank (local mod P) + P*parity(local >> p) (p = log2 P) at
// address stack*C1 + (local >> (p+1)), C1 = N/(2P).  Every cycle touches 2P elements in 2P
// different banks at any stride, and so do the loader and the drain (one word of 2P consecutive
// elements per cycle).  Logical position v (0..2P-1) of a cycle is in bank v ^ (parity << p).
//
// Stages.  Stage s (stride 2^a, a from the stage ROM) takes CT = STACKS*C1 cycles; cycle c gives
// unit u the pair q = c*P + u: elements e0 = ins0(q, a), e1 = e0 + 2^a.  Unit u computes
//     acc_j = t[0][j] * x0 + t[1][j] * x1 + bias_j            (4 multipliers, 2 adders)
//     y_j   = clamp(rne(acc_j * MULT_s, SHIFT_s) + ZP_s, LO_s, HI_s)
// with the twiddles and biases of (s, c) from TWIDDLE_FILE / BIAS_FILE and the stage constants
// from STAGE_FILE.  Stage 0 reads IN, the last stage writes OUT, the others the WK halves
// (stage s writes half s mod 2).  A stage starts GAP_s idle cycles after the previous one ends
// (from the stage ROM, computed by codegen/schedule/butterfly.py stage_gaps) so that it never
// reads an element before its write has landed: a read issued RAW = 8 cycles after the issue of
// the write sees it.
//
// ROM words (low bits first):
//   TWIDDLE_FILE  word s*CT + c: for unit u: t[0][0], t[1][0], t[0][1], t[1][1], T_BITS each
//                 (t[i][j] is the coefficient of input i in output j);
//   BIAS_FILE     word s*CT + c: for unit u: bias of e0, bias of e1, ACC_BITS each (HAS_BIAS);
//   STAGE_FILE    word s: stride log (5 bits), gap (GAP_BITS), shift (SH_BITS), multiplier
//                 (M_BITS, unsigned), zero point, lo, hi (W_BITS each, signed).
//
// Exactness: ACC_BITS holds every stage's exact accumulator (products and sums are taken modulo
// 2^ACC_BITS, the true sum fits); v * MULT is formed at V_BITS + M_BITS + 1 bits.  Stored values
// are W_BITS signed (every stage's codes fit).
//
// Frames: IN and OUT hold SLOTS = 2*CTX frames each (frame f in slot f mod SLOTS).  Up to CTX
// frames are in the units at once, one context each: a context runs a whole stage (CT cycles) at
// a time, then waits its gap; while one waits another runs its stage (the older ready context
// first), so the gaps of fast stages hide behind the other frames' stages.  codegen/schedule/butterfly.py simulate_issue
// models this logic cycle by cycle; the interval is max(its cycles per frame, input beats, output
// beats).  The loader fills the next slots while the units compute and the drain empties OUT.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_butterfly #(
    parameter integer N         = 8,     // butterfly size (power of two)
    parameter integer STACKS    = 1,     // butterflies side by side on copies of the input
    parameter integer STAGES    = 3,
    parameter integer P         = 1,     // butterfly units (power of two, <= N/2)
    parameter integer K         = 8,     // input elements (<= N)
    parameter integer M         = 8,     // output elements (<= STACKS*N)
    parameter integer IN_LANES  = 1,
    parameter integer OUT_LANES = 1,
    parameter integer IN_BITS   = 8,
    parameter integer IN_SIGNED = 1,
    parameter integer W_BITS    = 9,     // stored codes (signed)
    parameter integer T_BITS    = 8,     // twiddles (signed)
    parameter integer ACC_BITS  = 18,    // accumulators (signed, exact)
    parameter integer V_BITS    = 18,    // requant input (>= ACC_BITS, room for the largest shift)
    parameter integer OUT_BITS  = 8,
    parameter integer M_BITS    = 1,     // requant multiplier (unsigned)
    parameter integer SH_BITS   = 1,
    parameter integer GAP_BITS  = 1,
    parameter integer MUL_RQ    = 0,     // 1: some stage's multiplier is not 1
    parameter integer HAS_BIAS  = 0,
    parameter integer MUL_LUT   = 0,     // 1: products from LUT adders (narrow operands)
    parameter integer CTX       = 1,     // frames in the units at once (1, 2, 4, ...)
    parameter integer ROM_BLOCK = 1,     // twiddle / bias ROMs in block RAM (1) or LUTs (0): the cost model decides
    parameter         TWIDDLE_FILE = "twiddle.mem",
    parameter         BIAS_FILE    = "bias.mem",
    parameter         STAGE_FILE   = "stage.mem"
) (
    input  wire                          clk,
    input  wire                          rst,

    input  wire [IN_LANES*IN_BITS-1:0]   s_axis_tdata,
    input  wire                          s_axis_tvalid,
    output wire                          s_axis_tready,

    output wire [OUT_LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                          m_axis_tvalid,
    input  wire                          m_axis_tready
);

    function integer cw(input integer n);   // counter width for 0..n-1, at least 1
        cw = (n <= 2) ? 1 : $clog2(n);
    endfunction

    function integer ins0(input integer u, input integer a);     // a zero bit inserted at a
        ins0 = ((u >> a) << (a + 1)) | (u & ((1 << a) - 1));
    endfunction

    function integer del_bit(input integer v, input integer a);  // bit a removed
        del_bit = ((v >> (a + 1)) << a) | (v & ((1 << a) - 1));
    endfunction

    localparam integer LOG_N     = $clog2(N);
    localparam integer LP        = $clog2(P);
    localparam integer B         = 2 * P;                 // banks
    localparam integer C1        = N / B;                 // words per bank and stack
    localparam integer CT        = STACKS * C1;           // cycles per stage
    localparam integer IN_WORDS  = (K + B - 1) / B;
    localparam integer OUT_WORDS = (M + B - 1) / B;
    localparam integer EW        = LOG_N + 1;             // element index (one spare bit)
    localparam integer AW        = cw(CT) + 1;            // word address within a stage (one spare bit)
    localparam integer WKA       = cw(2 * CTX * CT);      // WK address: (context * 2 + half) * CT + word
    localparam integer SW        = cw(STAGES);
    localparam integer TWD       = STAGES * CT;           // twiddle / bias ROM depth
    localparam integer TAW       = cw(TWD);
    localparam integer IAW       = cw(C1) + 1;            // word address within an IN frame (one spare bit)
    localparam integer SLOTS     = 2 * CTX;               // frames held by IN and by OUT
    localparam integer INA       = cw(SLOTS * C1);        // IN address: slot * C1 + word
    localparam integer OUA       = cw(SLOTS * OUT_WORDS); // OUT address: slot * OUT_WORDS + word
    localparam integer XB        = cw(CTX);               // context number
    localparam integer SB        = cw(SLOTS);             // slot number
    localparam integer LAST_X_I  = CTX - 1;
    localparam integer LAST_SL_I = SLOTS - 1;
    localparam [XB-1:0] LAST_X   = LAST_X_I[XB-1:0];
    localparam [SB-1:0] LAST_SL  = LAST_SL_I[SB-1:0];
    localparam integer SELW      = cw(LP + 1);            // operand multiplexer select
    localparam integer LKW       = cw(IN_WORDS);
    localparam integer DKW       = cw(OUT_WORDS);
    localparam integer SL_BITS   = 5;
    localparam integer F_GAP     = SL_BITS;
    localparam integer F_SH      = F_GAP + GAP_BITS;
    localparam integer F_MUL     = F_SH + SH_BITS;
    localparam integer F_ZP      = F_MUL + M_BITS;
    localparam integer F_LO      = F_ZP + W_BITS;
    localparam integer F_HI      = F_LO + W_BITS;
    localparam integer SWORD     = F_HI + W_BITS;
    localparam integer TWORD     = P * 4 * T_BITS;
    localparam integer BWORD     = B * ACC_BITS;
    localparam integer PW        = W_BITS + T_BITS;       // exact product
    localparam integer RW        = V_BITS + M_BITS + 1;   // exact v * MULT
    localparam integer CWD       = ((RW > W_BITS) ? RW : W_BITS) + 2;   // rounding and clamping
    localparam integer XW        = IN_BITS + 1;

    localparam integer LAST_S_I  = STAGES - 1;
    localparam integer LAST_C_I  = CT - 1;
    localparam integer LAST_LK_I = IN_WORDS - 1;
    localparam integer LAST_DK_I = OUT_WORDS - 1;
    localparam [SW-1:0]  LAST_S  = LAST_S_I[SW-1:0];
    localparam [AW-1:0]  LAST_C  = LAST_C_I[AW-1:0];
    localparam [LKW-1:0] LAST_LK = LAST_LK_I[LKW-1:0];
    localparam [DKW-1:0] LAST_DK = LAST_DK_I[DKW-1:0];
    localparam [AW-1:0]  OUT_WORDS_A = OUT_WORDS[AW-1:0];

    // ====================================================================== ROMs
    reg [SWORD-1:0] stage_rom [0:STAGES-1];
    initial begin
        $readmemh(STAGE_FILE, stage_rom);
    end

    // ============================================================== input: lanes -> 2P words
    wire [B*IN_BITS-1:0] ld_tdata;
    wire                 ld_tvalid;
    wire                 ld_tready;

    einhls_lanes #(
        .SIZE(K), .BITS(IN_BITS), .IN_LANES(IN_LANES), .OUT_LANES(B)
    ) u_in_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
        .m_axis_tdata(ld_tdata), .m_axis_tvalid(ld_tvalid), .m_axis_tready(ld_tready)
    );

    reg  [SLOTS-1:0] in_full = 0;        // IN slot loaded, not yet read by stage 0
    reg  [SB-1:0]  ld_slot = 0;
    reg  [LKW-1:0] ld_word = 0;
    assign ld_tready = !in_full[ld_slot];
    wire           ld_fire = ld_tvalid && ld_tready;
    wire           ld_last = ld_word == LAST_LK;
    /* verilator lint_off UNUSEDSIGNAL */    // the word index is below C1: its top bits are zero
    wire [31:0]    ld_word_i = {{(32-LKW){1'b0}}, ld_word};
    /* verilator lint_on UNUSEDSIGNAL */
    wire           ld_par = ^(ld_word_i & (C1 - 1));
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]    ld_addr_i = {{(32-SB){1'b0}}, ld_slot} * C1 + ld_word_i;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [INA-1:0] ld_addr = ld_addr_i[INA-1:0];

    // ============================================================== issue (cycle t)
    reg  [CTX-1:0] cbusy = 0;             // context x holds a frame
    reg  [SB-1:0]  cslot [0:CTX-1];       // its slot in IN and OUT
    reg  [SW-1:0]  cst [0:CTX-1];         // its next stage
    reg  [GAP_BITS-1:0] cidle [0:CTX-1];  // idle cycles it still waits before that stage
    reg            running = 1'b0;        // a stage is being issued (by context cur)
    reg  [XB-1:0]  cur = 0;
    reg  [AW-1:0]  cyc = 0;               // cycle within the stage (stack-major)
    reg  [XB-1:0]  nxt = 0;               // the context the next frame goes to
    reg  [SB-1:0]  nslot = 0;             // and its slot
    reg  [XB-1:0]  old = 0;               // the context of the oldest frame in the units
    reg  [SLOTS-1:0] out_used = 0;        // OUT slot claimed by a frame in the units
    reg  [SLOTS-1:0] out_full = 0;        // OUT slot written, not yet drained

    integer x;
    initial begin
        for (x = 0; x < CTX; x = x + 1) begin
            cst[x] = 0;
            cidle[x] = 0;
            cslot[x] = 0;
        end
    end

    // the oldest ready context (ready: holds a frame and waits no more)
    wire [CTX-1:0] ready;
    reg  [XB-1:0]  sel;
    reg            any_ready;
    genvar g;
    generate
        for (g = 0; g < CTX; g = g + 1) begin : g_ready
            assign ready[g] = cbusy[g] && cidle[g] == {GAP_BITS{1'b0}};
        end
    endgenerate
    always @(*) begin : pick
        integer i;
        reg [XB-1:0] c;
        sel = old;
        any_ready = 1'b0;
        for (i = CTX - 1; i >= 0; i = i - 1) begin
            c = (old + i >= CTX) ? old + i[XB-1:0] - CTX[XB-1:0] : old + i[XB-1:0];
            if (ready[c]) begin
                sel = c;
                any_ready = 1'b1;
            end
        end
    end

    wire           issue = running || any_ready;
    wire [XB-1:0]  ictx = running ? cur : sel;
    wire [SW-1:0]  st = cst[ictx];
    /* verilator lint_off UNUSEDSIGNAL */   // each pipeline step reads the fields it needs
    wire [SWORD-1:0] rom0 = stage_rom[st];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [4:0]     a0 = rom0[4:0];
    wire [SB-1:0]  islot = cslot[ictx];
    wire           start = !cbusy[nxt] && in_full[nslot] && !out_used[nslot];
    wire           last_c = cyc == LAST_C;
    wire           last_s = st == LAST_S;
    wire           stage_end = issue && last_c;
    wire           frame_end = stage_end && last_s;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]    tw_addr_i = {{(32-SW){1'b0}}, st} * CT + {{(32-AW){1'b0}}, cyc};
    /* verilator lint_on UNUSEDSIGNAL */
    wire [TAW-1:0] tw_addr = tw_addr_i[TAW-1:0];

    // addresses of unit 0's pair: q0 = (cyc mod C1) * P inside stack cyc / C1
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]    cyc_i = {{(32-AW){1'b0}}, cyc};
    wire [31:0]    q0 = (cyc_i % C1) * P;
    wire [31:0]    e0_i = ((q0 >> a0) << (a0 + 1)) | (q0 & ((32'd1 << a0) - 1));
    wire [31:0]    e1_i = e0_i | (32'd1 << a0);
    wire [31:0]    base_i = (cyc_i / C1) * C1;
    wire [31:0]    wa0_i = base_i + (e0_i >> (LP + 1));
    wire [31:0]    wa1_i = base_i + (e1_i >> (LP + 1));
    wire [31:0]    ia0_i = e0_i >> (LP + 1);
    wire [31:0]    ia1_i = e1_i >> (LP + 1);
    /* verilator lint_on UNUSEDSIGNAL */
    wire           par0 = ^(e0_i[EW-1:0] >> LP);
    wire [AW-2:0]  wa0 = wa0_i[AW-2:0];
    wire [AW-2:0]  wa1 = wa1_i[AW-2:0];
    wire [IAW-2:0] ia0 = ia0_i[IAW-2:0];
    wire [IAW-2:0] ia1 = ia1_i[IAW-2:0];
    /* verilator lint_off UNUSEDSIGNAL */   // unused with one stage
    wire           rd_half = ~st[0];      // stage s >= 1 reads WK half (s - 1) mod 2
    /* verilator lint_on UNUSEDSIGNAL */

    always @(posedge clk) begin
        if (issue) begin
            if (last_c) begin
                running <= 1'b0;
                cyc <= {AW{1'b0}};
                cst[ictx] <= last_s ? {SW{1'b0}} : st + 1'b1;
                if (last_s) begin
                    old <= (old == LAST_X) ? {XB{1'b0}} : old + 1'b1;
                end
            end else begin
                running <= 1'b1;
                cur <= ictx;
                cyc <= cyc + 1'b1;
            end
        end
        for (x = 0; x < CTX; x = x + 1) begin
            if (issue && last_c && !last_s && ictx == x[XB-1:0]) begin
                cidle[x] <= rom0[F_GAP +: GAP_BITS];
            end else if (cidle[x] != {GAP_BITS{1'b0}}) begin
                cidle[x] <= cidle[x] - 1'b1;
            end
            if (frame_end && ictx == x[XB-1:0]) begin
                cbusy[x] <= 1'b0;
            end
            if (start && nxt == x[XB-1:0]) begin
                cbusy[x] <= 1'b1;
                cslot[x] <= nslot;
                cst[x] <= {SW{1'b0}};
                cidle[x] <= {GAP_BITS{1'b0}};
            end
        end
        if (start) begin
            nxt <= (nxt == LAST_X) ? {XB{1'b0}} : nxt + 1'b1;
            nslot <= (nslot == LAST_SL) ? {SB{1'b0}} : nslot + 1'b1;
        end
        if (ld_fire) begin
            ld_word <= ld_last ? {LKW{1'b0}} : ld_word + 1'b1;
            if (ld_last) begin
                ld_slot <= (ld_slot == LAST_SL) ? {SB{1'b0}} : ld_slot + 1'b1;
            end
        end
        if (rst) begin
            cbusy <= 0;
            running <= 1'b0;
            cyc <= {AW{1'b0}};
            nxt <= {XB{1'b0}};
            nslot <= {SB{1'b0}};
            old <= {XB{1'b0}};
            ld_slot <= {SB{1'b0}};
            ld_word <= {LKW{1'b0}};
        end
    end

    // stage 0's last issue releases the frame's IN slot; the loader fills it again
    wire in_release = stage_end && st == {SW{1'b0}};
    always @(posedge clk) begin
        for (x = 0; x < SLOTS; x = x + 1) begin
            in_full[x] <= (in_full[x] || (ld_fire && ld_last && ld_slot == x[SB-1:0]))
                          && !(in_release && islot == x[SB-1:0]);
        end
        if (rst) begin
            in_full <= 0;
        end
    end

    // ======================================================= pipeline tags, cycles t+1 .. t+7
    // t+1 memory and ROM data, t+2 operands, t+3 products, t+4 sums, t+5 v*M, t+6 rounded,
    // t+7 write registers (the memory write lands at the end of t+7)
    reg [6:0]      vld = 7'b0;            // vld[k]: stage t+k+1 holds a pair
    reg [7*SW-1:0] stg = 0;
    reg [6:0]      prt = 7'b0;            // parity of the cycle
    reg [7*(AW-1)-1:0] wa0_p = 0;
    reg [7*(AW-1)-1:0] wa1_p = 0;
    reg [6:0]      fl_p = 7'b0;           // the frame's last pair
    reg [7*XB-1:0] cx_p = 0;              // context of the pair
    reg [7*SB-1:0] sl_p = 0;              // its slot

    always @(posedge clk) begin
        vld   <= {vld[5:0], issue};
        stg   <= {stg[6*SW-1:0], st};
        prt   <= {prt[5:0], par0};
        wa0_p <= {wa0_p[6*(AW-1)-1:0], wa0};
        wa1_p <= {wa1_p[6*(AW-1)-1:0], wa1};
        fl_p  <= {fl_p[5:0], frame_end};
        cx_p  <= {cx_p[6*XB-1:0], ictx};
        sl_p  <= {sl_p[6*SB-1:0], islot};
        if (rst) begin
            vld <= 7'b0;
        end
    end

    wire [SW-1:0] s1 = stg[0 +: SW];
    wire [SW-1:0] s4 = stg[3*SW +: SW];
    wire [SW-1:0] s5 = stg[4*SW +: SW];
    wire [SW-1:0] s6 = stg[5*SW +: SW];

    // ====================================================================== memories
    wire [B*W_BITS-1:0]  rd_in;            // IN words at t+1, extended to W_BITS
    wire [B*W_BITS-1:0]  rd_wk;            // WK words at t+1
    /* verilator lint_off UNUSEDSIGNAL */  // the OUT frame keeps OUT_BITS; WK is absent with one stage
    reg  [B*W_BITS-1:0]  wr_data7 = 0;     // write registers (t+7)
    reg                  wr_wk7 = 1'b0;    // write WK half wr_half7 of context wr_cx7
    reg                  wr_half7 = 1'b0;
    reg  [XB-1:0]        wr_cx7 = 0;
    /* verilator lint_on UNUSEDSIGNAL */
    reg  [B*(AW-1)-1:0]  wr_addr7 = 0;
    reg                  wr_out7 = 1'b0;   // write OUT slot wr_cx7
    reg  [SB-1:0]        wr_sl7 = 0;       // OUT slot of the write
    reg  [B*OUT_BITS-1:0] dr_rd = 0;       // drain words

    // drain control
    reg  [DKW-1:0] dr_word = 0;
    reg  [SB-1:0]  dr_slot = 0;
    reg            dr_valid = 1'b0;
    reg            dr_par = 1'b0;
    wire           dr_ready;
    wire           dr_en = !dr_valid || dr_ready;
    wire           dr_issue = dr_en && out_full[dr_slot];
    wire           dr_last = dr_word == LAST_DK;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]    dr_word_i = {{(32-DKW){1'b0}}, dr_word};
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]    dr_addr_i = {{(32-SB){1'b0}}, dr_slot} * OUT_WORDS + dr_word_i;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [OUA-1:0] dr_addr = dr_addr_i[OUA-1:0];

    genvar k;
    generate
        for (k = 0; k < B; k = k + 1) begin : g_bank
            localparam integer HI_HALF = k / P;      // 1: bank in the upper half
            // ---- IN: loader writes, stage 0 reads
            reg [IN_BITS-1:0] in_mem [0:SLOTS*C1-1];
            reg [IN_BITS-1:0] in_q = 0;
            wire [IN_BITS-1:0] ld_v = ld_par ? ld_tdata[(k ^ P)*IN_BITS +: IN_BITS]
                                             : ld_tdata[k*IN_BITS +: IN_BITS];
            wire sel1_in = (HI_HALF != 0) ^ par0;    // this bank holds a position >= P
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] in_ra_i = {{(32-SB){1'b0}}, islot} * C1 + {{(32-IAW+1){1'b0}}, sel1_in ? ia1 : ia0};
            /* verilator lint_on UNUSEDSIGNAL */
            wire [INA-1:0] in_ra = in_ra_i[INA-1:0];
            always @(posedge clk) begin
                if (ld_fire) begin
                    in_mem[ld_addr] <= ld_v;
                end
                in_q <= in_mem[in_ra];
            end
            wire signed [XW-1:0] in_x = (IN_SIGNED != 0) ? {in_q[IN_BITS-1], in_q} : {1'b0, in_q};
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [((XW > W_BITS) ? XW : W_BITS)-1:0] in_ext = in_x;
            /* verilator lint_on UNUSEDSIGNAL */
            assign rd_in[k*W_BITS +: W_BITS] = in_ext[W_BITS-1:0];

            // ---- WK: stage s writes half s mod 2, stage s+1 reads it
            if (STAGES > 1) begin : g_wk
                reg [W_BITS-1:0] wk_mem [0:2*CTX*CT-1];
                reg [W_BITS-1:0] wk_q = 0;
                /* verilator lint_off UNUSEDSIGNAL */
                wire [31:0] wk_ra_i = ({{(32-XB){1'b0}}, ictx} * 2 + (rd_half ? 1 : 0)) * CT
                                      + {{(32-AW+1){1'b0}}, sel1_in ? wa1 : wa0};
                wire [31:0] wk_wa_i = ({{(32-XB){1'b0}}, wr_cx7} * 2 + (wr_half7 ? 1 : 0)) * CT
                                      + {{(32-AW+1){1'b0}}, wr_addr7[k*(AW-1) +: AW-1]};
                /* verilator lint_on UNUSEDSIGNAL */
                always @(posedge clk) begin
                    if (wr_wk7) begin
                        wk_mem[wk_wa_i[WKA-1:0]] <= wr_data7[k*W_BITS +: W_BITS];
                    end
                    wk_q <= wk_mem[wk_ra_i[WKA-1:0]];
                end
                assign rd_wk[k*W_BITS +: W_BITS] = wk_q;
            end else begin : g_no_wk
                assign rd_wk[k*W_BITS +: W_BITS] = {W_BITS{1'b0}};
            end

            // ---- OUT: the last stage writes (words below OUT_WORDS), the drain reads
            reg [OUT_BITS-1:0] out_mem [0:SLOTS*OUT_WORDS-1];
            wire [AW-2:0] oa = wr_addr7[k*(AW-1) +: AW-1];
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] oa_i = {{(32-SB){1'b0}}, wr_sl7} * OUT_WORDS + {{(32-AW+1){1'b0}}, oa};
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                if (wr_out7 && {1'b0, oa} < OUT_WORDS_A) begin
                    out_mem[oa_i[OUA-1:0]] <= wr_data7[k*W_BITS +: OUT_BITS];
                end
                if (dr_en) begin
                    dr_rd[k*OUT_BITS +: OUT_BITS] <= out_mem[dr_addr];
                end
            end
        end
    endgenerate

    // ================================================== t+1: twiddles, biases; t+2: operands
    reg [TWORD-1:0] tw1 = 0;
    reg [TWORD-1:0] tw2 = 0;
    reg [BWORD-1:0] bias1 = 0;
    reg [BWORD-1:0] bias2 = 0;
    always @(posedge clk) begin
        tw2 <= tw1;
        bias2 <= bias1;
    end
    // Shallow ROMs would waste most of a block RAM: the cost model (codegen/schedule/butterfly.py)
    // decides, ROM_BLOCK = 0 leaves them to LUTs (no attribute: a distributed ROM).
    generate
        if (ROM_BLOCK != 0) begin : g_rom_block
            (* rom_style = "block" *)
            reg [TWORD-1:0] tw_rom [0:TWD-1];
            initial begin
                $readmemh(TWIDDLE_FILE, tw_rom);
            end
            always @(posedge clk) tw1 <= tw_rom[tw_addr];
            if (HAS_BIAS != 0) begin : g_bias
                (* rom_style = "block" *)
                reg [BWORD-1:0] bias_rom [0:TWD-1];
                initial begin
                    $readmemh(BIAS_FILE, bias_rom);
                end
                always @(posedge clk) bias1 <= bias_rom[tw_addr];
            end
        end else begin : g_rom_lut
            reg [TWORD-1:0] tw_rom [0:TWD-1];
            initial begin
                $readmemh(TWIDDLE_FILE, tw_rom);
            end
            always @(posedge clk) tw1 <= tw_rom[tw_addr];
            if (HAS_BIAS != 0) begin : g_bias
                reg [BWORD-1:0] bias_rom [0:TWD-1];
                initial begin
                    $readmemh(BIAS_FILE, bias_rom);
                end
                always @(posedge clk) bias1 <= bias_rom[tw_addr];
            end
        end
    endgenerate

    /* verilator lint_off UNUSEDSIGNAL */
    wire [SWORD-1:0] rom1 = stage_rom[s1];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [4:0]       a1 = rom1[4:0];
    wire [SELW-1:0]  sel_a1;               // the stride's operand pattern: a < p, or p for all others
    wire             par1 = prt[0];
    wire [B*W_BITS-1:0] phys1 = (s1 == {SW{1'b0}}) ? rd_in : rd_wk;
    wire [B*W_BITS-1:0] logical1;          // logical position v = bank v ^ (parity << p)
    reg  [B*W_BITS-1:0] x2 = 0;            // unit u: x0 at 2u, x1 at 2u+1
    wire [B*W_BITS-1:0] x_next;

    genvar u, a;
    generate
        if (LP == 0) begin : g_sel1_one
            assign sel_a1 = {SELW{1'b0}};
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_a1 = ^a1;
            /* verilator lint_on UNUSEDSIGNAL */
        end else begin : g_sel1
            localparam [4:0] LP5 = LP[4:0];
            localparam [SELW-1:0] LPS = LP[SELW-1:0];
            assign sel_a1 = (a1 < LP5) ? a1[SELW-1:0] : LPS;
        end
        for (k = 0; k < B; k = k + 1) begin : g_unswap
            assign logical1[k*W_BITS +: W_BITS] = par1 ? phys1[(k ^ P)*W_BITS +: W_BITS]
                                                       : phys1[k*W_BITS +: W_BITS];
        end
        for (u = 0; u < P; u = u + 1) begin : g_operand
            wire [W_BITS-1:0] c0 [0:LP];
            wire [W_BITS-1:0] c1 [0:LP];
            for (a = 0; a < LP; a = a + 1) begin : g_stride
                assign c0[a] = logical1[ins0(u, a)*W_BITS +: W_BITS];
                assign c1[a] = logical1[(ins0(u, a) + (1 << a))*W_BITS +: W_BITS];
            end
            assign c0[LP] = logical1[u*W_BITS +: W_BITS];
            assign c1[LP] = logical1[(u + P)*W_BITS +: W_BITS];
            assign x_next[(2*u)*W_BITS +: W_BITS]   = c0[sel_a1];
            assign x_next[(2*u+1)*W_BITS +: W_BITS] = c1[sel_a1];
        end
    endgenerate

    always @(posedge clk) begin
        x2 <= x_next;
    end

    // ======================================= t+3: products, t+4: sums (4 multipliers, 2 adders)
    localparam integer MW = (PW > ACC_BITS) ? PW : ACC_BITS;
    function automatic signed [MW-1:0] lut_mul(input signed [W_BITS-1:0] v, input signed [T_BITS-1:0] t);
        integer i;
        reg signed [MW-1:0] sum;
        begin
            sum = 0;
            for (i = 0; i < T_BITS - 1; i = i + 1) begin
                if (t[i]) sum = sum + (v <<< i);
            end
            if (t[T_BITS-1]) sum = sum - (v <<< (T_BITS - 1));
            lut_mul = sum;
        end
    endfunction

    reg [B*ACC_BITS-1:0] acc4 = 0;         // unit u: acc0 at 2u, acc1 at 2u+1
    generate
        for (u = 0; u < P; u = u + 1) begin : g_unit
            wire signed [W_BITS-1:0] x0 = x2[(2*u)*W_BITS +: W_BITS];
            wire signed [W_BITS-1:0] x1 = x2[(2*u+1)*W_BITS +: W_BITS];
            wire signed [T_BITS-1:0] t00 = tw2[(4*u+0)*T_BITS +: T_BITS];
            wire signed [T_BITS-1:0] t10 = tw2[(4*u+1)*T_BITS +: T_BITS];
            wire signed [T_BITS-1:0] t01 = tw2[(4*u+2)*T_BITS +: T_BITS];
            wire signed [T_BITS-1:0] t11 = tw2[(4*u+3)*T_BITS +: T_BITS];
            /* verilator lint_off UNUSEDSIGNAL */   // products are summed modulo 2^ACC_BITS
            wire signed [MW-1:0] m00, m10, m01, m11;
            /* verilator lint_on UNUSEDSIGNAL */
            if (MUL_LUT != 0) begin : g_lut
                assign m00 = lut_mul(x0, t00);
                assign m10 = lut_mul(x1, t10);
                assign m01 = lut_mul(x0, t01);
                assign m11 = lut_mul(x1, t11);
            end else begin : g_dsp
                assign m00 = x0 * t00;
                assign m10 = x1 * t10;
                assign m01 = x0 * t01;
                assign m11 = x1 * t11;
            end
            reg [ACC_BITS-1:0] p00 = 0, p10 = 0, p01 = 0, p11 = 0;
            reg [ACC_BITS-1:0] b0 = 0, b1 = 0;
            always @(posedge clk) begin
                p00 <= m00[ACC_BITS-1:0];
                p10 <= m10[ACC_BITS-1:0];
                p01 <= m01[ACC_BITS-1:0];
                p11 <= m11[ACC_BITS-1:0];
                b0  <= bias2[(2*u)*ACC_BITS +: ACC_BITS];
                b1  <= bias2[(2*u+1)*ACC_BITS +: ACC_BITS];
                acc4[(2*u)*ACC_BITS +: ACC_BITS]   <= p00 + p10 + b0;
                acc4[(2*u+1)*ACC_BITS +: ACC_BITS] <= p01 + p11 + b1;
            end
        end
    endgenerate

    // ============================================ t+5: v * MULT, t+6: round, zero point, clamp
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SWORD-1:0] rom4 = stage_rom[s4];
    wire [SWORD-1:0] rom5 = stage_rom[s5];
    wire [M_BITS-1:0] mult4 = rom4[F_MUL +: M_BITS];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [SH_BITS-1:0] sh5 = rom5[F_SH +: SH_BITS];
    wire signed [W_BITS-1:0] zp5 = rom5[F_ZP +: W_BITS];
    wire signed [W_BITS-1:0] lo5 = rom5[F_LO +: W_BITS];
    wire signed [W_BITS-1:0] hi5 = rom5[F_HI +: W_BITS];
    reg  [B*RW-1:0] prod5 = 0;
    reg  [B*W_BITS-1:0] y6 = 0;

    generate
        for (k = 0; k < B; k = k + 1) begin : g_requant
            wire signed [ACC_BITS-1:0] acc = acc4[k*ACC_BITS +: ACC_BITS];
            wire signed [V_BITS-1:0] v = acc;
            wire signed [RW-1:0] prod;
            if (MUL_RQ != 0) begin : g_mul
                wire signed [M_BITS:0] m = {1'b0, mult4};
                assign prod = v * m;
            end else begin : g_pass
                assign prod = v;
            end
            always @(posedge clk) begin
                prod5[k*RW +: RW] <= prod;
            end
            // rne(p, sh) = p / 2^sh rounded half to even (codegen/ir/requant.py)
            wire signed [RW-1:0] p = prod5[k*RW +: RW];
            wire signed [RW-1:0] q = p >>> sh5;
            wire [RW-1:0] low = ~({RW{1'b1}} << sh5);
            wire [RW-1:0] rem = p & low;
            wire [RW-1:0] half = ({{(RW-1){1'b0}}, 1'b1} << sh5) >> 1;
            wire up = (sh5 != {SH_BITS{1'b0}}) && ((rem > half) || ((rem == half) && q[0]));
            wire signed [CWD-1:0] r = q + $signed({1'b0, up});
            wire signed [CWD-1:0] y = r + zp5;
            /* verilator lint_off UNUSEDSIGNAL */   // the clamped value fits W_BITS
            wire signed [CWD-1:0] cl = (y < lo5) ? lo5 : (y > hi5) ? hi5 : y;
            /* verilator lint_on UNUSEDSIGNAL */
            always @(posedge clk) begin
                y6[k*W_BITS +: W_BITS] <= cl[W_BITS-1:0];
            end
        end
    endgenerate

    // ======================================= t+7: back to the banks (the inverse permutation)
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SWORD-1:0] rom6 = stage_rom[s6];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [4:0]       a6 = rom6[4:0];
    wire [SELW-1:0]  sel_a6;
    wire             par6 = prt[5];
    wire [AW-2:0]    wa0_6 = wa0_p[5*(AW-1) +: AW-1];
    wire [AW-2:0]    wa1_6 = wa1_p[5*(AW-1) +: AW-1];
    wire [B*W_BITS-1:0] wl6;               // value of logical position v
    wire [B*W_BITS-1:0] wdata_next;
    wire [B*(AW-1)-1:0] waddr_next;

    generate
        if (LP == 0) begin : g_sel6_one
            assign sel_a6 = {SELW{1'b0}};
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused_a6 = ^a6;
            /* verilator lint_on UNUSEDSIGNAL */
        end else begin : g_sel6
            localparam [4:0] LP5 = LP[4:0];
            localparam [SELW-1:0] LPS = LP[SELW-1:0];
            assign sel_a6 = (a6 < LP5) ? a6[SELW-1:0] : LPS;
        end
        for (k = 0; k < B; k = k + 1) begin : g_wlogical
            wire [W_BITS-1:0] cand [0:LP];
            for (a = 0; a < LP; a = a + 1) begin : g_stride
                // position k holds output ((k >> a) & 1) of unit del_bit(k, a)
                assign cand[a] = y6[(2*del_bit(k, a) + ((k >> a) & 1))*W_BITS +: W_BITS];
            end
            if (k < P) begin : g_lo
                assign cand[LP] = y6[(2*k)*W_BITS +: W_BITS];
            end else begin : g_hi
                assign cand[LP] = y6[(2*(k-P)+1)*W_BITS +: W_BITS];
            end
            assign wl6[k*W_BITS +: W_BITS] = cand[sel_a6];
        end
        for (k = 0; k < B; k = k + 1) begin : g_wbank
            localparam integer HI_HALF = k / P;
            assign wdata_next[k*W_BITS +: W_BITS] = par6 ? wl6[(k ^ P)*W_BITS +: W_BITS]
                                                         : wl6[k*W_BITS +: W_BITS];
            assign waddr_next[k*(AW-1) +: AW-1] = ((HI_HALF != 0) ^ par6) ? wa1_6 : wa0_6;
        end
    endgenerate

    wire last6 = s6 == LAST_S;
    always @(posedge clk) begin
        wr_data7 <= wdata_next;
        wr_addr7 <= waddr_next;
        wr_wk7   <= vld[5] && !last6;
        wr_half7 <= s6[0];
        wr_out7  <= vld[5] && last6;
        wr_cx7   <= cx_p[5*XB +: XB];
        wr_sl7   <= sl_p[5*SB +: SB];
        if (rst) begin
            wr_wk7  <= 1'b0;
            wr_out7 <= 1'b0;
        end
    end

    // the frame's last write lands at the end of t+7: its OUT slot can be drained
    wire          out_done = vld[6] && fl_p[6];
    wire [SB-1:0] out_done_slot = sl_p[6*SB +: SB];
    always @(posedge clk) begin
        for (x = 0; x < SLOTS; x = x + 1) begin
            out_full[x] <= (out_full[x] || (out_done && out_done_slot == x[SB-1:0]))
                           && !(dr_issue && dr_last && dr_slot == x[SB-1:0]);
            out_used[x] <= (out_used[x] || (start && nslot == x[SB-1:0]))
                           && !(dr_issue && dr_last && dr_slot == x[SB-1:0]);
        end
        if (rst) begin
            out_full <= 0;
            out_used <= 0;
        end
    end

    // ====================================================================== drain
    always @(posedge clk) begin
        if (dr_en) begin
            dr_valid <= dr_issue;
            dr_par   <= ^(dr_word_i & (C1 - 1));
        end
        if (dr_issue) begin
            dr_word <= dr_last ? {DKW{1'b0}} : dr_word + 1'b1;
            if (dr_last) begin
                dr_slot <= (dr_slot == LAST_SL) ? {SB{1'b0}} : dr_slot + 1'b1;
            end
        end
        if (rst) begin
            dr_valid <= 1'b0;
            dr_word  <= {DKW{1'b0}};
            dr_slot  <= {SB{1'b0}};
        end
    end

    wire [B*OUT_BITS-1:0] dr_tdata;
    generate
        for (k = 0; k < B; k = k + 1) begin : g_dr
            assign dr_tdata[k*OUT_BITS +: OUT_BITS] = dr_par ? dr_rd[(k ^ P)*OUT_BITS +: OUT_BITS]
                                                             : dr_rd[k*OUT_BITS +: OUT_BITS];
        end
    endgenerate

    einhls_lanes #(
        .SIZE(M), .BITS(OUT_BITS), .IN_LANES(B), .OUT_LANES(OUT_LANES)
    ) u_out_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(dr_tdata), .s_axis_tvalid(dr_valid), .s_axis_tready(dr_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

    /* verilator lint_off UNUSEDSIGNAL */
    wire unused = ^{wa0_p[6*(AW-1) +: AW-1], wa1_p[6*(AW-1) +: AW-1], stg[6*SW +: SW], stg[SW +: 2*SW],
                    prt[6:1], fl_p[5:0], vld[4:0], cx_p[5*XB-1:0], cx_p[6*XB +: XB], sl_p[5*SB-1:0]};
    /* verilator lint_on UNUSEDSIGNAL */

endmodule

`resetall
