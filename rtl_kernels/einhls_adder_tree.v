// einhls_adder_tree: GROUPS independent pipelined adder trees of N_IN signed values each.
//
// Level l adds pairs of level l-1 (an odd one out passes through); the values of level l are
// min(IN_BITS + l, OUT_BITS) bits wide, so every adder is only as wide as its result can be
// (exact bit growth), and capped at OUT_BITS where sums are taken modulo 2^OUT_BITS (the linear
// unit's accumulator is exact modulo its width, see einhls_linear).  A register follows every
// STAGE-th level and the last level (STAGE = 0: no registers at all).  A TAG_BITS sideband (valid
// and frame flags) travels with the data so the caller never needs to know the latency.
// No stall: the tree advances every cycle (the linear unit's MAC pipeline never stops).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_adder_tree #(
    parameter integer GROUPS   = 1,    // independent trees (one per PE)
    parameter integer N_IN     = 4,    // values summed by each tree
    parameter integer IN_BITS  = 16,   // must be <= OUT_BITS
    parameter integer OUT_BITS = 18,
    parameter integer STAGE    = 2,    // adder levels per pipeline register
    parameter integer TAG_BITS = 1
) (
    /* verilator lint_off UNUSEDSIGNAL */   // no registers when N_IN = 1 or STAGE = 0
    input  wire                           clk,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [GROUPS*N_IN*IN_BITS-1:0] in_data,
    input  wire [TAG_BITS-1:0]            in_tag,
    output wire [GROUPS*OUT_BITS-1:0]     out_data,
    output wire [TAG_BITS-1:0]            out_tag
);

    localparam integer LEVELS = (N_IN <= 1) ? 0 : $clog2(N_IN);
    localparam integer SLOTS  = GROUPS * (LEVELS + 1) * N_IN;

    // Every node has an OUT_BITS slot holding its value sign-extended; a level reads only the
    // low bits it needs, so unused upper bits are removed by synthesis.
    /* verilator lint_off UNUSEDSIGNAL */   // upper bits of the slots
    wire [SLOTS*OUT_BITS-1:0]       node;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [(LEVELS+1)*TAG_BITS-1:0]  tag;

    function integer nodes_at(input integer level);
        integer n, k;
        begin
            n = N_IN;
            for (k = 0; k < level; k = k + 1) begin
                n = (n + 1) / 2;
            end
            nodes_at = n;
        end
    endfunction

    function integer width_at(input integer level);
        width_at = (IN_BITS + level < OUT_BITS) ? IN_BITS + level : OUT_BITS;
    endfunction

    genvar g, lv, i;
    generate
        assign tag[TAG_BITS-1:0] = in_tag;

        for (g = 0; g < GROUPS; g = g + 1) begin : g_group
            // level 0: the inputs
            for (i = 0; i < N_IN; i = i + 1) begin : g_leaf
                wire signed [IN_BITS-1:0]  v = in_data[(g*N_IN + i)*IN_BITS +: IN_BITS];
                wire signed [OUT_BITS-1:0] v_ext = v;
                assign node[((g*(LEVELS+1))*N_IN + i)*OUT_BITS +: OUT_BITS] = v_ext;
            end

            for (lv = 1; lv <= LEVELS; lv = lv + 1) begin : g_level
                localparam integer W   = width_at(lv);
                localparam integer CNT = nodes_at(lv);
                localparam integer PRV = nodes_at(lv - 1);
                localparam REG = (STAGE > 0) && ((lv % STAGE == 0) || (lv == LEVELS));
                localparam integer BASE_IN  = (g*(LEVELS+1) + lv - 1) * N_IN;
                localparam integer BASE_OUT = (g*(LEVELS+1) + lv) * N_IN;

                for (i = 0; i < CNT; i = i + 1) begin : g_node
                    /* verilator lint_off UNUSEDSIGNAL */   // only the low W bits are summed
                    wire [OUT_BITS-1:0] a = node[(BASE_IN + 2*i)*OUT_BITS +: OUT_BITS];
                    wire signed [W-1:0] sum;
                    if (2*i + 1 < PRV) begin : g_add
                        wire [OUT_BITS-1:0] b = node[(BASE_IN + 2*i + 1)*OUT_BITS +: OUT_BITS];
                        /* verilator lint_on UNUSEDSIGNAL */
                        assign sum = a[W-1:0] + b[W-1:0];
                    end else begin : g_pass
                        /* verilator lint_on UNUSEDSIGNAL */
                        assign sum = a[W-1:0];
                    end
                    wire signed [OUT_BITS-1:0] value;
                    if (REG) begin : g_reg
                        reg signed [W-1:0] q = 0;
                        always @(posedge clk) begin
                            q <= sum;
                        end
                        assign value = q;
                    end else begin : g_comb
                        assign value = sum;
                    end
                    assign node[(BASE_OUT + i)*OUT_BITS +: OUT_BITS] = value;
                end
                // unused slots of this level (CNT < N_IN)
                if (CNT < N_IN) begin : g_fill
                    assign node[(BASE_OUT + CNT)*OUT_BITS +: (N_IN-CNT)*OUT_BITS] = {(N_IN-CNT)*OUT_BITS{1'b0}};
                end
            end

            assign out_data[g*OUT_BITS +: OUT_BITS] = node[((g*(LEVELS+1) + LEVELS)*N_IN)*OUT_BITS +: OUT_BITS];
        end

        // the sideband follows the registers of the levels
        for (lv = 1; lv <= LEVELS; lv = lv + 1) begin : g_tag
            localparam REG = (STAGE > 0) && ((lv % STAGE == 0) || (lv == LEVELS));
            if (REG) begin : g_reg
                reg [TAG_BITS-1:0] q = 0;
                always @(posedge clk) begin
                    q <= tag[(lv-1)*TAG_BITS +: TAG_BITS];
                end
                assign tag[lv*TAG_BITS +: TAG_BITS] = q;
            end else begin : g_comb
                assign tag[lv*TAG_BITS +: TAG_BITS] = tag[(lv-1)*TAG_BITS +: TAG_BITS];
            end
        end
        assign out_tag = tag[LEVELS*TAG_BITS +: TAG_BITS];
    endgenerate

endmodule

`resetall
