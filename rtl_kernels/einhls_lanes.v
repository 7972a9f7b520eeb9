// einhls_lanes: frame-aware lane-count converter for einhls element streams.
//
// A frame of SIZE elements arrives as ceil(SIZE/IN_LANES) beats of IN_LANES elements and leaves as
// ceil(SIZE/OUT_LANES) beats of OUT_LANES elements (layout of codegen/schedule/design.py: element e
// in beat e/LANES, lane e%LANES, zero padding after the last element).  Frames are delimited by
// counting beats, never by a tlast.
//
// Two optional stages, chosen at elaboration time:
//   gather  IN_LANES -> MID (MID a multiple of IN_LANES): collect MID/IN_LANES beats into one word;
//           the last word of a frame is completed early and zero filled.
//   split   MID -> OUT_LANES (MID a multiple of OUT_LANES): emit MID/OUT_LANES beats per word; the
//           last word of a frame emits only the beats the output frame still needs, and lanes after
//           the last element are forced to zero (so garbage padding on the input is cleaned up).
// MID = OUT_LANES when it is a multiple of IN_LANES (pure gather), IN_LANES when it is a multiple
// of OUT_LANES (pure split).
// Lane counts neither of which divides the other (17 -> 16, 13 -> 17) take a third form instead of
// gathering to lcm(IN_LANES, OUT_LANES) lanes (272 lanes at 17 -> 16: thousands of LUTs and FFs):
//   barrel  a queue of CAP = IN_LANES + 2*OUT_LANES - 2 lanes, FILL of them held from lane 0; an
//           input beat is written at lane FILL (after this cycle's output, if any, has shifted the
//           queue down by OUT_LANES); an output beat leaves from lanes 0..OUT_LANES-1 when FILL >=
//           OUT_LANES.  The last input beat of a frame adds its valid lanes and the frame's padding
//           (OUT_BEATS*OUT_LANES - SIZE lanes), so every frame starts on an output beat; the padded
//           lanes of the last output beat are forced to zero.  One beat in and one out a cycle (an
//           input beat is taken while the queue, after this cycle's output, has room for it: its
//           IN_LANES lanes, or for a frame's last beat its lanes and the padding).
// IN_LANES == OUT_LANES is a plain wire (no latency, no logic).
//
// Throughput: one input beat and one output beat per cycle; s_axis_tready depends combinationally
// on m_axis_tready only when a word completes (put an einhls_skid after it for long chains).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_lanes #(
    parameter integer SIZE      = 8,   // elements per frame
    parameter integer BITS      = 8,   // bits per element
    parameter integer IN_LANES  = 1,
    parameter integer OUT_LANES = 1
) (
    /* verilator lint_off UNUSEDSIGNAL */   // a plain wire when IN_LANES == OUT_LANES
    input  wire                       clk,
    input  wire                       rst,
    /* verilator lint_on UNUSEDSIGNAL */

    input  wire [IN_LANES*BITS-1:0]   s_axis_tdata,
    input  wire                       s_axis_tvalid,
    output wire                       s_axis_tready,

    output wire [OUT_LANES*BITS-1:0]  m_axis_tdata,
    output wire                       m_axis_tvalid,
    input  wire                       m_axis_tready
);

    function integer gcd(input integer a, input integer b);
        integer x, y, t;
        begin
            x = a;
            y = b;
            while (y != 0) begin
                t = x % y;
                x = y;
                y = t;
            end
            gcd = x;
        end
    endfunction

    // counter width for values 0..n-1 (at least one bit)
    function integer cw(input integer n);
        cw = (n <= 2) ? 1 : $clog2(n);
    endfunction

    localparam integer MID = (OUT_LANES % IN_LANES == 0) ? OUT_LANES :
                             (IN_LANES % OUT_LANES == 0) ? IN_LANES :
                             IN_LANES / gcd(IN_LANES, OUT_LANES) * OUT_LANES;

    localparam integer IN_BEATS  = (SIZE + IN_LANES - 1) / IN_LANES;
    localparam integer MID_BEATS = (SIZE + MID - 1) / MID;
    localparam integer OUT_BEATS = (SIZE + OUT_LANES - 1) / OUT_LANES;
    localparam BARREL = (OUT_LANES % IN_LANES != 0) && (IN_LANES % OUT_LANES != 0);

    generate
        if (BARREL) begin : g_barrel
            localparam integer A    = IN_LANES;
            localparam integer B    = OUT_LANES;
            localparam integer CAP  = A + 2 * B - 2;
            localparam integer FW   = $clog2(CAP + 1) + 1;           // FILL, and room for FILL + A + B
            localparam integer BW   = cw(IN_BEATS);
            localparam integer OW   = cw(OUT_BEATS);
            localparam integer LAST_IN_LANES = SIZE - (IN_BEATS - 1) * A;
            localparam integer PAD  = OUT_BEATS * B - SIZE;
            localparam integer LAST_LANES = SIZE - (OUT_BEATS - 1) * B;
            localparam integer LAST_BEAT_I = IN_BEATS - 1;
            localparam integer LAST_OUT_I  = OUT_BEATS - 1;
            localparam [BW-1:0] LAST_BEAT = LAST_BEAT_I[BW-1:0];
            localparam [OW-1:0] LAST_OUT  = LAST_OUT_I[OW-1:0];
            localparam [FW-1:0] A_W    = A[FW-1:0];
            localparam [FW-1:0] B_W    = B[FW-1:0];
            localparam integer TAIL_I = LAST_IN_LANES + PAD;
            // FILL after this cycle's output at most, for a beat to be taken: room for its A lanes,
            // or for a frame's last beat its lanes and the padding (TAIL <= A + B - 1).  The whole
            // queue is used, so a consumer that takes its beats in bursts (a Linear unit loading a
            // bank, then computing) does not stall the producer while lanes are free
            localparam integer ROOM_I = CAP - A;
            localparam integer LAST_ROOM_I = CAP - TAIL_I;
            localparam [FW-1:0] ROOM_W = ROOM_I[FW-1:0];
            localparam [FW-1:0] LAST_ROOM_W = LAST_ROOM_I[FW-1:0];
            localparam [FW-1:0] TAIL_W = TAIL_I[FW-1:0];

            reg  [CAP*BITS-1:0] queue = 0;
            reg  [FW-1:0]       fill = 0;
            reg  [BW-1:0]       in_beat = 0;
            reg  [OW-1:0]       out_beat = 0;
            reg  [CAP*BITS-1:0] next_queue;
            wire [B*BITS-1:0]   lane_mask;

            assign m_axis_tvalid = fill >= B_W;
            wire pop = m_axis_tvalid && m_axis_tready;
            wire [FW-1:0] kept = pop ? fill - B_W : fill;             // lanes left after the output
            assign s_axis_tready = kept <= ((in_beat == LAST_BEAT) ? LAST_ROOM_W : ROOM_W);
            wire push = s_axis_tvalid && s_axis_tready;

            genvar i;
            for (i = 0; i < B; i = i + 1) begin : g_mask
                assign lane_mask[i*BITS +: BITS] = (i < LAST_LANES || out_beat != LAST_OUT) ?
                                                   {BITS{1'b1}} : {BITS{1'b0}};
            end
            assign m_axis_tdata = queue[B*BITS-1:0] & lane_mask;

            // the input beat placed at lane `kept` of a queue-wide word: a logarithmic shifter of
            // constant steps of whole lanes, one for all lanes.  (An indexed part-select per lane,
            // [(lane - kept) * BITS +: BITS], made Yosys multiply kept by BITS, in DSPs where BITS is
            // not a power of two, and build a shifter for every lane: 8 -> 6 lanes of 27 bits
            // measured 16,860 cells and 18 DSP48E1.  A one-hot choice per lane instead (compare
            // kept with lane - j) is a priority chain of IN_LANES levels: 33 -> 32 lanes of 8 bits
            // measured three times the shifter.)
            reg [CAP*BITS-1:0] placed;
            integer step;
            always @(*) begin
                placed = {{((CAP - A) * BITS){1'b0}}, s_axis_tdata};
                for (step = 0; step < FW; step = step + 1) begin
                    if (kept[step] && (1 << step) < CAP) begin
                        placed = placed << ((1 << step) * BITS);
                    end
                end
            end

            // each queue lane: held (shifted down by an output beat) below `kept`, the input lane
            // `lane - kept` of a beat taken this cycle above it
            integer lane;
            always @(*) begin
                for (lane = 0; lane < CAP; lane = lane + 1) begin
                    if (push && lane >= kept && lane < kept + A_W) begin
                        next_queue[lane*BITS +: BITS] = placed[lane*BITS +: BITS];
                    end else if (pop && lane + B < CAP) begin
                        next_queue[lane*BITS +: BITS] = queue[(lane + B)*BITS +: BITS];
                    end else begin
                        next_queue[lane*BITS +: BITS] = queue[lane*BITS +: BITS];
                    end
                end
            end

            always @(posedge clk) begin
                queue <= next_queue;
                if (push) begin
                    fill    <= kept + ((in_beat == LAST_BEAT) ? TAIL_W : A_W);
                    in_beat <= (in_beat == LAST_BEAT) ? {BW{1'b0}} : in_beat + 1'b1;
                end else begin
                    fill <= kept;
                end
                if (pop) begin
                    out_beat <= (out_beat == LAST_OUT) ? {OW{1'b0}} : out_beat + 1'b1;
                end
                if (rst) begin
                    fill     <= {FW{1'b0}};
                    in_beat  <= {BW{1'b0}};
                    out_beat <= {OW{1'b0}};
                end
            end
        end else begin : g_chain
        wire [MID*BITS-1:0] mid_tdata;
        wire                mid_tvalid;
        wire                mid_tready;

        if (MID == IN_LANES) begin : g_no_gather
            assign mid_tdata     = s_axis_tdata;
            assign mid_tvalid    = s_axis_tvalid;
            assign s_axis_tready = mid_tready;
        end else begin : g_gather
            localparam integer RATIO = MID / IN_LANES;
            localparam integer SW    = cw(RATIO);
            localparam integer BW    = cw(IN_BEATS);
            localparam integer IW    = IN_LANES * BITS;
            localparam integer LAST_SLOT_I = RATIO - 1;
            localparam integer LAST_BEAT_I = IN_BEATS - 1;
            localparam [SW-1:0] LAST_SLOT = LAST_SLOT_I[SW-1:0];
            localparam [BW-1:0] LAST_BEAT = LAST_BEAT_I[BW-1:0];

            reg  [SW-1:0]           slot = 0;      // slot of the next input beat in the word
            reg  [BW-1:0]           in_beat = 0;   // input beat index inside the frame
            reg  [(RATIO-1)*IW-1:0] hold = 0;      // slots 0..RATIO-2 of the word being built
            reg  [MID*BITS-1:0]     out_data = 0;
            reg                     out_valid = 1'b0;
            wire [MID*BITS-1:0]     word;

            wire complete = (slot == LAST_SLOT) || (in_beat == LAST_BEAT);
            assign s_axis_tready = !complete || !out_valid || mid_tready;
            wire fire = s_axis_tvalid && s_axis_tready;

            // The finished word: held slots below `slot`, the incoming beat at `slot`, zeros above
            // (only reached when the frame ends early).
            genvar i;
            for (i = 0; i < RATIO; i = i + 1) begin : g_slot
                if (i < RATIO - 1) begin : g_held
                    assign word[i*IW +: IW] = (i < slot) ? hold[i*IW +: IW] :
                                              (i == slot) ? s_axis_tdata : {IW{1'b0}};
                    always @(posedge clk) begin
                        if (fire && !complete && i == slot) begin
                            hold[i*IW +: IW] <= s_axis_tdata;
                        end
                    end
                end else begin : g_top
                    assign word[i*IW +: IW] = s_axis_tdata;
                end
            end

            always @(posedge clk) begin
                if (fire) begin
                    slot    <= complete ? {SW{1'b0}} : slot + 1'b1;
                    in_beat <= (in_beat == LAST_BEAT) ? {BW{1'b0}} : in_beat + 1'b1;
                end
                if (fire && complete) begin
                    out_data  <= word;
                    out_valid <= 1'b1;
                end else if (mid_tready) begin
                    out_valid <= 1'b0;
                end
                if (rst) begin
                    slot      <= {SW{1'b0}};
                    in_beat   <= {BW{1'b0}};
                    out_valid <= 1'b0;
                end
            end

            assign mid_tdata  = out_data;
            assign mid_tvalid = out_valid;
        end

        if (MID == OUT_LANES) begin : g_no_split
            assign m_axis_tdata  = mid_tdata;
            assign m_axis_tvalid = mid_tvalid;
            assign mid_tready    = m_axis_tready;
        end else begin : g_split
            localparam integer RATIO = MID / OUT_LANES;
            // beats the final word of a frame emits; the rest of it is padding
            localparam integer LAST_SUBS = OUT_BEATS - (MID_BEATS - 1) * RATIO;
            // valid lanes in the final output beat of a frame
            localparam integer LAST_LANES = SIZE - (OUT_BEATS - 1) * OUT_LANES;
            localparam integer RW = cw(RATIO + 1);
            localparam integer MW = cw(MID_BEATS);
            localparam integer OW = cw(OUT_BEATS);
            localparam integer OWD = OUT_LANES * BITS;
            localparam integer LAST_MID_I = MID_BEATS - 1;
            localparam integer LAST_OUT_I = OUT_BEATS - 1;
            localparam [RW-1:0] FULL_SUBS = RATIO[RW-1:0];
            localparam [RW-1:0] END_SUBS  = LAST_SUBS[RW-1:0];
            localparam [MW-1:0] LAST_MID  = LAST_MID_I[MW-1:0];
            localparam [OW-1:0] LAST_OUT  = LAST_OUT_I[OW-1:0];

            reg [MID*BITS-1:0] buffer = 0;     // shifts down by one output beat per transfer
            reg [RW-1:0]       remain = 0;     // output beats still to send from `buffer`
            reg [MW-1:0]       mid_beat = 0;
            reg [OW-1:0]       out_beat = 0;
            wire [OWD-1:0]     lane_mask;

            genvar i;
            for (i = 0; i < OUT_LANES; i = i + 1) begin : g_mask
                assign lane_mask[i*BITS +: BITS] = (i < LAST_LANES || out_beat != LAST_OUT) ?
                                                   {BITS{1'b1}} : {BITS{1'b0}};
            end

            assign m_axis_tvalid = remain != 0;
            assign m_axis_tdata  = buffer[OWD-1:0] & lane_mask;
            wire m_fire = m_axis_tvalid && m_axis_tready;
            assign mid_tready = (remain == 0) || (remain == 1 && m_axis_tready);
            wire load = mid_tvalid && mid_tready;

            always @(posedge clk) begin
                if (load) begin
                    buffer   <= mid_tdata;
                    remain   <= (mid_beat == LAST_MID) ? END_SUBS : FULL_SUBS;
                    mid_beat <= (mid_beat == LAST_MID) ? {MW{1'b0}} : mid_beat + 1'b1;
                end else if (m_fire) begin
                    buffer <= buffer >> OWD;
                    remain <= remain - 1'b1;
                end
                if (m_fire) begin
                    out_beat <= (out_beat == LAST_OUT) ? {OW{1'b0}} : out_beat + 1'b1;
                end
                if (rst) begin
                    remain   <= {RW{1'b0}};
                    mid_beat <= {MW{1'b0}};
                    out_beat <= {OW{1'b0}};
                end
            end
        end
        end
    endgenerate

endmodule

`resetall
