// einhls_gelu: elementwise integer GELU (I-BERT's i-GELU, erf form), LANES elements per beat.
//
//     xr = x - ZP_IN,  q = (xr * Q_MULT) >>> Q_SHIFT             x / sqrt 2 with F fraction bits
//     t  = B - min(|q|, B),  L = sgn(q) (2^F - ((A * ((t * t) >> F)) >> F))
//     v  = xr * (2^F + L)                                       (V_BITS, signed)
//     y  = clamp(rne(v * MULT, SHIFT) + ZP, LO, HI)             einhls_requant, the einhls rule
// exactly as codegen/ir/nonlinear.py IntGelu.reference.
//
// Pipeline: input register -> xr, t and the sign of q -> v -> einhls_requant (3 stages); the
// front stages advance with the requant unit's s_axis_tready, so the whole unit takes one beat
// per cycle.  einhls_requant counts beats and zeroes the lanes after the last element.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_gelu #(
    parameter integer SIZE        = 8,
    parameter integer LANES       = 1,
    parameter integer IN_BITS     = 8,
    parameter integer IN_SIGNED   = 1,
    parameter signed [63:0] ZP_IN = 0,
    parameter [63:0]  Q_MULT      = 148291,
    parameter integer Q_SHIFT     = 7,
    parameter integer F           = 14,
    parameter [63:0]  POLY_A      = 4732,
    parameter [63:0]  POLY_B      = 28983,
    parameter integer V_BITS      = 24,     // bits of v = xr * (2^F + L)
    parameter integer M_BITS      = 1,
    parameter [63:0]  MULT        = 1,
    parameter integer SHIFT       = 15,
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

    localparam integer XRW = IN_BITS + 2;        // x - ZP_IN, signed
    localparam integer TW  = F + 2;              // t in [0, B], B < 2^(F+1)
    localparam signed [63:0] ONE_F  = 64'sd1 <<< F;
    localparam signed [63:0] Q_MULT_S = $signed({1'b0, Q_MULT[62:0]});
    localparam signed [63:0] POLY_B_S = $signed({1'b0, POLY_B[62:0]});

    wire rq_ready;
    reg  valid_c = 1'b0;
    wire en = !valid_c || rq_ready;
    assign s_axis_tready = en;

    // ---------------------------------------------------------------- stage A: input register
    reg                     valid_a = 1'b0;
    reg [LANES*IN_BITS-1:0] x_a = 0;
    always @(posedge clk) begin
        if (en) begin
            valid_a <= s_axis_tvalid;
            x_a     <= s_axis_tdata;
        end
        if (rst) valid_a <= 1'b0;
    end

    // ------------------------------------------------- stage B: xr, t = B - min(|q|, B), sign of q
    reg                   valid_b = 1'b0;
    reg [LANES*XRW-1:0]   xr_b = 0;
    reg [LANES*TW-1:0]    t_b = 0;
    reg [LANES-1:0]       pos_b = 0;
    reg [LANES-1:0]       neg_b = 0;
    wire [LANES*XRW-1:0]  xr_next;
    wire [LANES*TW-1:0]   t_next;
    wire [LANES-1:0]      pos_next;
    wire [LANES-1:0]      neg_next;

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_front
            wire [IN_BITS-1:0] raw = x_a[l*IN_BITS +: IN_BITS];
            wire signed [63:0] x_s = (IN_SIGNED != 0) ? {{(64-IN_BITS){raw[IN_BITS-1]}}, raw}
                                                      : {{(64-IN_BITS){1'b0}}, raw};
            /* verilator lint_off WIDTHTRUNC */  // x - ZP_IN fits XRW bits
            wire signed [XRW-1:0] xr = x_s - ZP_IN;
            /* verilator lint_on WIDTHTRUNC */
            wire signed [63:0] q = (xr * Q_MULT_S) >>> Q_SHIFT;
            wire signed [63:0] mag = q[63] ? -q : q;
            /* verilator lint_off UNUSEDSIGNAL */  // t in [0, B] fits TW bits
            wire signed [63:0] t = POLY_B_S - ((mag > POLY_B_S) ? POLY_B_S : mag);
            /* verilator lint_on UNUSEDSIGNAL */
            assign xr_next[l*XRW +: XRW] = xr;
            assign t_next[l*TW +: TW] = t[TW-1:0];
            assign pos_next[l] = !q[63] && (q != 64'sd0);
            assign neg_next[l] = q[63];
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid_b <= valid_a;
            xr_b    <= xr_next;
            t_b     <= t_next;
            pos_b   <= pos_next;
            neg_b   <= neg_next;
        end
        if (rst) valid_b <= 1'b0;
    end

    // ---------------------------------------------------------- stage C: v = xr * (2^F + L)
    reg  [LANES*V_BITS-1:0] v_c = 0;
    wire [LANES*V_BITS-1:0] v_next;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_poly
            // exact widths: t < 2^(F+1), (t * t) >> F < 2^(F+2), 0 <= 2^F + L <= 2^(F+1)
            wire [TW-1:0] t = t_b[l*TW +: TW];
            /* verilator lint_off UNUSEDSIGNAL */  // the low F bits are dropped, the top two are 0
            wire [2*TW-1:0] sq = t * t;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [F+1:0] sq_f = sq[2*F+1:F];
            /* verilator lint_off UNUSEDSIGNAL */  // A * sq_f >> F <= 2^F
            wire [63:0] poly = POLY_A * sq_f;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [F:0] l_mag = ONE_F[F:0] - poly[2*F:F];
            /* verilator lint_off WIDTHTRUNC */  // 2^F +- l_mag in [0, 2^(F+1)]
            wire [F+1:0] fac = pos_b[l] ? ONE_F[F+1:0] + l_mag : (neg_b[l] ? ONE_F[F+1:0] - l_mag : ONE_F[F+1:0]);
            /* verilator lint_on WIDTHTRUNC */
            wire signed [XRW-1:0] xr = xr_b[l*XRW +: XRW];
            /* verilator lint_off UNUSEDSIGNAL */  // v fits V_BITS
            wire signed [XRW+F+2:0] v = xr * $signed({1'b0, fac});
            /* verilator lint_on UNUSEDSIGNAL */
            assign v_next[l*V_BITS +: V_BITS] = v[V_BITS-1:0];
        end
    endgenerate

    always @(posedge clk) begin
        if (en) begin
            valid_c <= valid_b;
            v_c     <= v_next;
        end
        if (rst) valid_c <= 1'b0;
    end

    // ------------------------------------------------------------------------- requantization
    einhls_requant #(
        .SIZE(SIZE), .LANES(LANES), .IN_BITS(V_BITS), .IN_SIGNED(1), .V_BITS(V_BITS),
        .OFFSET_ROM(0), .OFF_BITS(1), .OFFSET(0), .M_BITS(M_BITS), .MULT_ROM(0), .MULT(MULT),
        .SHIFT(SHIFT), .ZP(ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(v_c), .s_axis_tvalid(valid_c), .s_axis_tready(rq_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall
