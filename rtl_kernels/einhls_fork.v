// einhls_fork: copies one stream to N consumers (N = 2..8), like verilog-axis axis_broadcast.
//
// One data register and one valid bit per output: every output takes the beat in its own time
// and a new beat is accepted once each output has taken (or is taking, this cycle) the current
// one, so no beat is lost or duplicated.  With every consumer ready, one beat per cycle.
// s_axis_tready depends combinationally on m_axis_tready (put a skid after it to cut the path).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_fork #(
    parameter integer WIDTH = 8,
    parameter integer N     = 2        // consumers
) (
    input  wire                 clk,
    input  wire                 rst,

    input  wire [WIDTH-1:0]     s_axis_tdata,
    input  wire                 s_axis_tvalid,
    output wire                 s_axis_tready,

    output wire [N*WIDTH-1:0]   m_axis_tdata,   // output i in bits [i*WIDTH +: WIDTH]
    output wire [N-1:0]         m_axis_tvalid,
    input  wire [N-1:0]         m_axis_tready
);

    reg [WIDTH-1:0] data = 0;
    reg [N-1:0]     pending = {N{1'b0}};   // outputs that have not yet taken `data`

    // free when no output still waits for the current beat after this cycle's handshakes
    wire free = &(~pending | m_axis_tready);
    assign s_axis_tready = free;
    wire s_fire = s_axis_tvalid && free;

    always @(posedge clk) begin
        if (s_fire) begin
            data    <= s_axis_tdata;
            pending <= {N{1'b1}};
        end else begin
            pending <= pending & ~m_axis_tready;
        end
        if (rst) begin
            pending <= {N{1'b0}};
        end
    end

    assign m_axis_tdata  = {N{data}};
    assign m_axis_tvalid = pending;

endmodule

`resetall
