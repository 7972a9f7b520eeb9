// einhls_binop: the arithmetic core of einhls_add and einhls_mul (instantiate those, not this).
//
//     MUL = 0:  v = MA * (a - A_ZP) + MB * (b - B_ZP)     (one product per lane when MA == MB)
//     MUL = 1:  v = (a - A_ZP) * (b - B_ZP) * MA
//     y = clamp(rne(v, SHIFT) + ZP, LO, HI)            (the einhls rule, codegen/ir/joins.py)
//
// rne(p, s) = p / 2^s rounded half to even, exactly as einhls_requant.  Every width is exact:
// a - A_ZP takes A_BITS + 2 signed bits (A_ZP is a code of a's type), the multipliers are
// unsigned M_BITS, and v is formed at full width, so nothing is lost before rounding.
//
// One beat is taken from both inputs at once (each ready waits for the other input's valid, as
// AXI4-Stream allows).  Lanes after the last element of a token (SIZE elements per token) are
// output as zero.  Pipeline: centred inputs -> products -> v -> rounded, clamped output; it
// advances when the output register is free (s*_axis_tready needs !m_axis_tvalid || m_axis_tready).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_binop #(
    parameter integer LANES    = 1,
    parameter integer SIZE     = 8,       // elements per token
    parameter integer A_BITS   = 8,
    parameter integer A_SIGNED = 1,
    parameter integer B_BITS   = 8,
    parameter integer B_SIGNED = 1,
    parameter integer OUT_BITS = 8,
    parameter integer MUL      = 0,       // 0: weighted sum, 1: product
    parameter signed [63:0] A_ZP = 0,
    parameter signed [63:0] B_ZP = 0,
    parameter [63:0]  MA       = 1,
    parameter [63:0]  MB       = 1,       // unused when MUL = 1
    parameter integer M_BITS   = 1,       // width of the unsigned multipliers
    parameter integer SHIFT    = 0,
    parameter signed [63:0] ZP = 0,
    parameter signed [63:0] LO = -128,
    parameter signed [63:0] HI = 127
) (
    input  wire                      clk,
    input  wire                      rst,

    input  wire [LANES*A_BITS-1:0]   s0_axis_tdata,
    input  wire                      s0_axis_tvalid,
    output wire                      s0_axis_tready,

    input  wire [LANES*B_BITS-1:0]   s1_axis_tdata,
    input  wire                      s1_axis_tvalid,
    output wire                      s1_axis_tready,

    output wire [LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);

    localparam integer BEATS      = (SIZE + LANES - 1) / LANES;
    localparam integer LAST_LANES = SIZE - (BEATS - 1) * LANES;
    localparam integer BW         = (BEATS <= 2) ? 1 : $clog2(BEATS);
    localparam integer LAST_BEAT_I = BEATS - 1;
    localparam [BW-1:0] LAST_BEAT = LAST_BEAT_I[BW-1:0];

    localparam integer DA  = A_BITS + 2;                      // a - A_ZP
    localparam integer DB  = B_BITS + 2;                      // b - B_ZP
    localparam integer PA  = DA + M_BITS + 1;                 // MA * (a - A_ZP)
    localparam integer PB  = DB + M_BITS + 1;
    localparam integer DD  = DA + DB;                         // (a - A_ZP) * (b - B_ZP)
    localparam integer VW0 = (MUL != 0) ? DD + M_BITS + 1 : (PA > PB ? PA : PB) + 1;
    localparam integer VW  = (VW0 > SHIFT + 1) ? VW0 : SHIFT + 1;   // rounding needs SHIFT + 1 bits
    localparam integer QW  = VW - SHIFT + 1;                  // rounded quotient (+1 for the carry)
    // clamping width: the rounded value plus ZP never overflows it, and ZP, LO and HI (codes of
    // the output type, so OUT_BITS + 1 bits signed) fit it too
    localparam integer CW  = (QW > OUT_BITS + 1 ? QW : OUT_BITS + 1) + 2;

    localparam signed [DA+63:0] AZ_X = A_ZP;   // sign-extended, then cut
    localparam signed [DB+63:0] BZ_X = B_ZP;
    localparam signed [DA-1:0]  AZ_C = AZ_X[DA-1:0];
    localparam signed [DB-1:0]  BZ_C = BZ_X[DB-1:0];
    localparam signed [CW+63:0] ZP_X = ZP;
    localparam signed [CW+63:0] LO_X = LO;
    localparam signed [CW+63:0] HI_X = HI;
    localparam signed [CW-1:0]  ZP_C = ZP_X[CW-1:0];
    localparam signed [CW-1:0]  LO_C = LO_X[CW-1:0];
    localparam signed [CW-1:0]  HI_C = HI_X[CW-1:0];
    localparam signed [M_BITS:0] MA_C = {1'b0, MA[M_BITS-1:0]};
    localparam signed [M_BITS:0] MB_C = {1'b0, MB[M_BITS-1:0]};

    wire en = !m_axis_tvalid || m_axis_tready;
    assign s0_axis_tready = en && s1_axis_tvalid;
    assign s1_axis_tready = en && s0_axis_tvalid;
    wire fire = en && s0_axis_tvalid && s1_axis_tvalid;

    // ---------------------------------------------------------- stage 1: centred inputs
    reg [BW-1:0]          beat = 0;
    reg                   valid1 = 1'b0, last1 = 1'b0;
    reg [LANES*DA-1:0]    da1 = 0;
    reg [LANES*DB-1:0]    db1 = 0;
    wire [LANES*DA-1:0]   da_next;
    wire [LANES*DB-1:0]   db_next;

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_centre
            wire [A_BITS-1:0] a = s0_axis_tdata[l*A_BITS +: A_BITS];
            wire [B_BITS-1:0] b = s1_axis_tdata[l*B_BITS +: B_BITS];
            wire signed [DA-1:0] a_s = (A_SIGNED != 0) ? $signed({{2{a[A_BITS-1]}}, a}) : $signed({2'b00, a});
            wire signed [DB-1:0] b_s = (B_SIGNED != 0) ? $signed({{2{b[B_BITS-1]}}, b}) : $signed({2'b00, b});
            assign da_next[l*DA +: DA] = a_s - AZ_C;
            assign db_next[l*DB +: DB] = b_s - BZ_C;
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid1 <= fire;
            last1  <= beat == LAST_BEAT;
            da1    <= da_next;
            db1    <= db_next;
            if (fire) begin
                beat <= (beat == LAST_BEAT) ? {BW{1'b0}} : beat + 1'b1;
            end
        end
        if (rst) begin
            valid1 <= 1'b0;
            beat   <= {BW{1'b0}};
        end
    end

    // ------------------------------------------- stages 2 and 3: products, then v
    reg valid2 = 1'b0, last2 = 1'b0, valid3 = 1'b0, last3 = 1'b0;
    reg  [LANES*VW-1:0] v3 = 0;
    wire [LANES*VW-1:0] v_next;

    generate
        if (MUL != 0) begin : g_mul
            reg  [LANES*DD-1:0] d2 = 0;
            wire [LANES*DD-1:0] d_next;
            for (l = 0; l < LANES; l = l + 1) begin : g_lane
                wire signed [DA-1:0] da = da1[l*DA +: DA];
                wire signed [DB-1:0] db = db1[l*DB +: DB];
                wire signed [DD-1:0] d = da * db;
                assign d_next[l*DD +: DD] = d;
                wire signed [DD-1:0] dq = d2[l*DD +: DD];
                wire signed [VW-1:0] v = dq * MA_C;
                assign v_next[l*VW +: VW] = v;
            end
            always @(posedge clk) begin
                if (en) begin
                    d2 <= d_next;
                end
            end
        end else if (MA[M_BITS-1:0] == MB[M_BITS-1:0]) begin : g_add_shared
            // one multiplier: MA * (a - A_ZP) + MA * (b - B_ZP) = MA * ((a - A_ZP) + (b - B_ZP)),
            // the usual residual add of two inputs of one scale
            localparam integer SW = (DA > DB ? DA : DB) + 1;
            reg  [LANES*SW-1:0] sum2 = 0;
            wire [LANES*SW-1:0] sum_next;
            for (l = 0; l < LANES; l = l + 1) begin : g_lane
                wire signed [DA-1:0] da = da1[l*DA +: DA];
                wire signed [DB-1:0] db = db1[l*DB +: DB];
                wire signed [SW-1:0] sum = da + db;
                assign sum_next[l*SW +: SW] = sum;
                wire signed [SW-1:0] sum_q = sum2[l*SW +: SW];
                wire signed [VW-1:0] v = sum_q * MA_C;
                assign v_next[l*VW +: VW] = v;
            end
            always @(posedge clk) begin
                if (en) begin
                    sum2 <= sum_next;
                end
            end
        end else begin : g_add
            reg  [LANES*PA-1:0] pa2 = 0;
            reg  [LANES*PB-1:0] pb2 = 0;
            wire [LANES*PA-1:0] pa_next;
            wire [LANES*PB-1:0] pb_next;
            for (l = 0; l < LANES; l = l + 1) begin : g_lane
                wire signed [DA-1:0] da = da1[l*DA +: DA];
                wire signed [DB-1:0] db = db1[l*DB +: DB];
                wire signed [PA-1:0] pa = da * MA_C;
                wire signed [PB-1:0] pb = db * MB_C;
                assign pa_next[l*PA +: PA] = pa;
                assign pb_next[l*PB +: PB] = pb;
                wire signed [PA-1:0] pa_q = pa2[l*PA +: PA];
                wire signed [PB-1:0] pb_q = pb2[l*PB +: PB];
                wire signed [VW-1:0] v = pa_q + pb_q;
                assign v_next[l*VW +: VW] = v;
            end
            always @(posedge clk) begin
                if (en) begin
                    pa2 <= pa_next;
                    pb2 <= pb_next;
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid2 <= valid1;
            last2  <= last1;
            valid3 <= valid2;
            last3  <= last2;
            v3     <= v_next;
        end
        if (rst) begin
            valid2 <= 1'b0;
            valid3 <= 1'b0;
        end
    end

    // ------------------------------------- stage 4: round half to even, zero point, clamp
    reg valid4 = 1'b0;
    reg  [LANES*OUT_BITS-1:0] y4 = 0;
    wire [LANES*OUT_BITS-1:0] y_next;

    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_round
            wire signed [VW-1:0] p = v3[l*VW +: VW];
            wire signed [QW-1:0] r;
            if (SHIFT == 0) begin : g_exact
                assign r = p;
            end else begin : g_rne
                wire signed [VW-SHIFT-1:0] q = p[VW-1:SHIFT];     // floor(p / 2^SHIFT)
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
            // lanes after the last element of the token carry zeros
            wire pad = (l >= LAST_LANES) && last3;
            assign y_next[l*OUT_BITS +: OUT_BITS] = pad ? {OUT_BITS{1'b0}} : c[OUT_BITS-1:0];
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid4 <= valid3;
            y4     <= y_next;
        end
        if (rst) begin
            valid4 <= 1'b0;
        end
    end

    assign m_axis_tdata  = y4;
    assign m_axis_tvalid = valid4;

endmodule

`resetall
