using System.Collections.Concurrent;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using static ModelCompiler.Tests.CpuTarget.CpuHarness;

namespace ModelCompiler.Tests.CpuTarget;

/// <summary>
/// One graph that uses every op in every form the CPU emitter distinguishes (each broadcast pattern, every
/// attention mask, window and bias kind, every RoPE scaling, integer arithmetic and casts, ...), each result a
/// named output. It is compiled once; each output is then compared with the reference interpreter on several
/// input shapes (queries shorter and longer than keys, single-token decode, a cached prefix for dynamic NTK).
/// </summary>
internal static class KernelGraph
{
    public static CpuHarness Build()
    {
        var h = new CpuHarness("Kernels");
        var x = h.Input("x", DType.F32, Batch, Seq, 8);
        var x2 = h.Input("x2", DType.F32, Batch, Seq, 8);
        var xb = h.Input("xb", DType.F32, Batch, 1, 8);
        var ids = h.Input("ids", DType.I64, Batch, Seq);
        var q = h.Input("q", DType.F32, Batch, Seq, 4, 8);
        var k = h.Input("k", DType.F32, Batch, KSeq, 2, 8);
        var v = h.Input("v", DType.F32, Batch, KSeq, 2, 6);
        var abias = h.Input("abias", DType.F32, Batch, 4, Seq, KSeq);
        var maskbias = h.Input("maskbias", DType.F32, Seq, KSeq);

        var w8 = h.Weight("w8", [8], 0.25, 1.0);
        var b8 = h.Weight("b8", [8]);
        var lin = h.Weight("lin", [6, 8]);
        var linBias = h.Weight("lin.bias", [6]);
        var mat = h.Weight("mat", [8, 5]);
        var emb = h.Weight("emb", [11, 8]);
        var t5Table = h.Weight("t5.table", [32, 4]);
        var relTable = h.Weight("rel.table", [6, 4, 8]);
        var fused = h.Weight("fused", [8, 12]);   // stored [in, out], used transposed and sliced: prepared at load time

        // ---- elementwise unary ----
        var positive = h.Op(OpKind.Add, h.Op(OpKind.Abs, x), h.Const(0.5));
        foreach (var op in new[] { OpKind.Neg, OpKind.Exp, OpKind.Tanh, OpKind.Sigmoid, OpKind.Relu, OpKind.Gelu, OpKind.GeluTanh, OpKind.Silu, OpKind.Abs })
            h.Output($"unary.{op.Mnemonic()}", h.Op(op, x));
        foreach (var op in new[] { OpKind.Log, OpKind.Sqrt, OpKind.Rsqrt })
            h.Output($"unary.{op.Mnemonic()}", h.Op(op, positive));
        var wide = h.Op(OpKind.Mul, x, h.Const(6.0));
        h.Output("unary.gelu.wide", h.Op(OpKind.Gelu, wide));
        h.Output("unary.silu.wide", h.Op(OpKind.Silu, wide));
        // A chain whose intermediates die at their users: computed in place.
        h.Output("unary.chain_in_place", h.Op(OpKind.Tanh, h.Op(OpKind.Neg, h.Op(OpKind.Add, x, x2))));

        // ---- elementwise binary: every op in every broadcast form ----
        var first = h.Op(OpKind.Slice, [x2], ("axis", 0L), ("start", 0L), ("end", 1L));      // [1, seq, 8]: a trailing [seq, 8] block
        var mean = h.Op(OpKind.ReduceMean, [x], ("axis", -1L));                              // [batch, seq, 1]
        foreach (var op in new[] { OpKind.Add, OpKind.Sub, OpKind.Mul, OpKind.Div, OpKind.Maximum, OpKind.Minimum, OpKind.Pow })
        {
            var a = op == OpKind.Pow ? positive : x;
            var m = op.Mnemonic();
            h.Output($"binary.{m}.same", h.Op(op, a, x2));
            h.Output($"binary.{m}.rows", h.Op(op, a, w8));
            h.Output($"binary.{m}.rows_left", h.Op(op, op == OpKind.Pow ? w8 : b8, op == OpKind.Pow ? x : a));
            h.Output($"binary.{m}.scalar", h.Op(op, a, h.Const(0.7)));
            h.Output($"binary.{m}.scalar_left", h.Op(op, h.Const(1.3), x));
            h.Output($"binary.{m}.block", h.Op(op, a, first));
            h.Output($"binary.{m}.strided", h.Op(op, a, xb));
            h.Output($"binary.{m}.strided_both", h.Op(op, op == OpKind.Pow ? h.Op(OpKind.Add, h.Op(OpKind.Abs, mean), h.Const(0.5)) : mean, w8));
        }

        // ---- integers: positions, arithmetic (wrapping), casts ----
        var p = h.Op(OpKind.Positions, [x], ("axis", 1L), ("offset", 0L));
        var p3 = h.Op(OpKind.Positions, [x], ("axis", 1L), ("offset", 3L));
        h.Output("int.positions", p);
        h.Output("int.positions.offset", p3);
        h.Output("int.positions.batch", h.Op(OpKind.Positions, [x], ("axis", 0L), ("offset", 0L)));
        var one = h.Const(1, DType.I64);
        foreach (var op in new[] { OpKind.Add, OpKind.Sub, OpKind.Mul, OpKind.Div, OpKind.Maximum, OpKind.Minimum, OpKind.Pow })
            h.Output($"int.{op.Mnemonic()}", h.Op(op, p3, op == OpKind.Pow ? h.Const(3, DType.I64) : h.Op(OpKind.Add, p, one)));
        var big = h.Op(OpKind.Mul, p3, h.Const(3_000_000_000, DType.I64));
        h.Output("cast.i64_to_i32_wraps", h.B.Add(OpKind.Cast, [big], null, new TensorType(DType.I32, Seq)));
        h.Output("cast.i64_to_f32", h.B.Add(OpKind.Cast, [p3], null, new TensorType(DType.F32, Seq)));
        h.Output("cast.f32_to_i64", h.B.Add(OpKind.Cast, [wide], null, new TensorType(DType.I64, Batch, Seq, 8)));
        h.Output("cast.f32_to_bool", h.B.Add(OpKind.Cast, [h.Op(OpKind.Relu, x)], null, new TensorType(DType.Bool, Batch, Seq, 8)));
        h.Output("cast.f32_to_f16", h.B.Add(OpKind.Cast, [x], null, new TensorType(DType.F16, Batch, Seq, 8)));

        // ---- linear algebra ----
        h.Output("linear", h.B.Linear(x, lin));
        h.Output("linear.bias", h.B.Linear(x, lin, linBias));
        h.Output("linear.rank2", h.B.Linear(h.B.Reshape(h.B.Slice(x, 0, 0, 1), Seq, 8), lin));
        var fusedT = h.B.Transpose(fused, 1, 0);                                              // [12, 8]
        h.Output("linear.prepared_weight", h.B.Linear(x, h.B.Slice(fusedT, 0, 4, 10), h.B.Slice(h.B.Reshape(fused, 96), 0, 0, 6)));
        h.Output("matmul.weight", h.Op(OpKind.MatMul, x, mat));
        h.Output("matmul.broadcast_batch", h.Op(OpKind.MatMul, x, h.B.Reshape(mat, 1, 8, 5)));
        var q2 = h.B.Slice(q, 2, 0, 2);
        var qt = h.B.Transpose(q2, 0, 2, 1, 3);                                              // [b, 2, s, 8]
        var kt = h.B.Transpose(k, 0, 2, 3, 1);                                               // [b, 2, 8, kseq]
        h.Output("matmul.scores", h.Op(OpKind.MatMul, qt, kt));

        // ---- normalisation and reductions ----
        h.Output("rms_norm", h.Op(OpKind.RmsNorm, [x, w8], ("eps", 1e-5), ("offset", 0.0)));
        h.Output("rms_norm.offset", h.Op(OpKind.RmsNorm, [x, w8], ("eps", 1e-6), ("offset", 1.0)));
        h.Output("rms_norm.bare", h.Op(OpKind.RmsNorm, [x], ("eps", 1e-5)));
        h.Output("layer_norm", h.Op(OpKind.LayerNorm, [x, w8, b8], ("eps", 1e-5)));
        h.Output("layer_norm.bare", h.Op(OpKind.LayerNorm, [x], ("eps", 1e-12)));
        h.Output("layer_norm.weight_only", h.Op(OpKind.LayerNorm, [x, w8], ("eps", 1e-5)));
        h.Output("softmax.last", h.Op(OpKind.Softmax, [x], ("axis", -1L)));
        h.Output("softmax.seq", h.Op(OpKind.Softmax, [x], ("axis", 1L)));
        h.Output("softmax.batch", h.Op(OpKind.Softmax, [x], ("axis", 0L)));
        h.Output("reduce_mean.last", mean);
        h.Output("reduce_mean.seq", h.Op(OpKind.ReduceMean, [x], ("axis", 1L)));

        // ---- shapes ----
        h.Output("transpose.heads", h.B.Transpose(q, 0, 2, 1, 3));
        h.Output("transpose.rotate", h.B.Transpose(x, 2, 0, 1));
        h.Output("transpose.int", h.B.Transpose(ids, 1, 0));
        h.Output("slice.last", h.B.Slice(x, 2, 2, 6));
        h.Output("slice.heads", h.B.Slice(q, 2, 1, 3));
        h.Output("slice.symbolic_axis", h.B.Slice(x, 1, 0, 1));
        h.Output("slice.int", h.B.Slice(ids, 1, 0, 1));
        h.Output("concat.last", h.Op(OpKind.Concat, [x, x2, h.B.Slice(x, 2, 0, 3)], ("axis", -1L)));
        h.Output("concat.int", h.Op(OpKind.Concat, [h.B.Reshape(p, Seq, 1), h.B.Reshape(p3, Seq, 1)], ("axis", 1L)));
        h.Output("reshape.merge", h.B.Reshape(q, Batch, Seq, 32));

        // ---- embeddings and positions ----
        h.Output("embedding", h.Op(OpKind.Embedding, ids, emb));
        h.Output("sinusoidal.interleaved", h.Op(OpKind.SinusoidalPositions, [p], ("dim", 8L), ("base", 10000.0), ("interleaved", true)));
        h.Output("sinusoidal.halves_odd", h.Op(OpKind.SinusoidalPositions, [p3], ("dim", 7L), ("base", 100.0), ("interleaved", false)));
        var x4 = h.B.Reshape(x, Batch, Seq, 2, 4);
        (string Name, Node X, Node Pos, (string, object)[] Attrs)[] ropes =
        [
            ("rope", q, p, [("theta", 10000.0), ("rotary_dim", 8L)]),
            ("rope.interleaved", q, p, [("theta", 500.0), ("rotary_dim", 8L), ("interleaved", true)]),
            ("rope.partial", q, p3, [("theta", 10000.0), ("rotary_dim", 6L)]),
            ("rope.partial_small", x4, p, [("theta", 10000.0), ("rotary_dim", 2L)]),
            ("rope.linear", q, p3, [("theta", 10000.0), ("rotary_dim", 8L), ("scaling", "linear"), ("factor", 2.0)]),
            ("rope.dynamic", q, p, [("theta", 10000.0), ("rotary_dim", 8L), ("scaling", "dynamic"), ("factor", 2.0), ("original_max_positions", 3L)]),
            ("rope.dynamic.interleaved", x4, p3, [("theta", 10000.0), ("rotary_dim", 4L), ("scaling", "dynamic"), ("factor", 3.0), ("original_max_positions", 4L), ("interleaved", true)]),
        ];
        foreach (var (name, input, pos, attrs) in ropes) h.Output(name, h.Op(OpKind.Rope, [input, pos], attrs));
        var kpos = h.Op(OpKind.Positions, [k], ("axis", 1L), ("offset", 0L));
        var qpos = h.Op(OpKind.Positions, [q], ("axis", 1L), ("offset", 0L));
        h.Output("alibi.6_heads", h.Op(OpKind.AlibiBias, [qpos, kpos], ("heads", 6L)));
        h.Output("t5_bias.bidirectional", h.Op(OpKind.RelativePositionBias, [t5Table, qpos, kpos], ("bidirectional", true), ("num_buckets", 32L), ("max_distance", 128L)));
        h.Output("t5_bias.causal", h.Op(OpKind.RelativePositionBias, [t5Table, qpos, kpos], ("bidirectional", false), ("num_buckets", 32L), ("max_distance", 20L)));
        h.Output("xpos.queries", h.Op(OpKind.Xpos, [q, p], ("theta", 10000.0), ("scale_base", 512.0), ("downscale", false), ("interleaved", true)));
        h.Output("xpos.keys_halves", h.Op(OpKind.Xpos, [q, p3], ("theta", 100.0), ("scale_base", 16.0), ("downscale", true), ("interleaved", false)));
        h.Output("relative_scores", h.Op(OpKind.RelativeScores, q, relTable, qpos, kpos));

        // ---- attention: every mask, window and sinks, GQA and MHA, every bias form ----
        var alibi = h.Op(OpKind.AlibiBias, [qpos, kpos], ("heads", 4L));
        (string Name, Node[] Ins, (string, object)[] Attrs)[] attentions =
        [
            ("attention.none", [q, k, v], [("mask", "none")]),
            ("attention.causal", [q, k, v], [("mask", "causal")]),
            ("attention.prefix", [q, k, v], [("mask", "prefix"), ("prefix", 2L)]),
            ("attention.causal.window_sinks", [q, k, v], [("mask", "causal"), ("window", 2L), ("sinks", 1L)]),
            ("attention.causal.window", [q, k, v], [("mask", "causal"), ("window", 3L)]),
            ("attention.none.window_sinks", [q, k, v], [("mask", "none"), ("window", 2L), ("sinks", 2L)]),
            ("attention.prefix.window", [q, k, v], [("mask", "prefix"), ("prefix", 3L), ("window", 1L)]),
            ("attention.scale", [q, k, v], [("mask", "none"), ("scale", 0.3)]),
            ("attention.mha", [q2, h.B.Slice(k, 2, 0, 2), v], [("mask", "causal")]),
            ("attention.bias.alibi", [q, k, v, alibi], [("mask", "causal")]),
            ("attention.bias.full", [q, k, v, abias], [("mask", "none")]),
            ("attention.bias.matrix_neg_inf", [q, k, v, maskbias], [("mask", "none")]),
            ("attention.bias.t5", [q, k, v, h.Op(OpKind.RelativePositionBias, [t5Table, qpos, kpos], ("bidirectional", true), ("num_buckets", 32L), ("max_distance", 128L))], [("mask", "causal")]),
        ];
        foreach (var (name, ins, attrs) in attentions) h.Output(name, h.Op(OpKind.Attention, ins, attrs));

        // ---- mixture of experts ----
        var router = h.B.Linear(x, h.Weight("router", [4, 8], 2.0));
        var experts = Enumerable.Range(0, 4).Select(e => h.B.Linear(x, h.Weight($"expert.{e}", [8, 8]))).ToArray();
        h.Output("moe.top2", h.Op(OpKind.MoeCombine, [router, .. experts], ("top_k", 2L), ("normalize", true)));
        h.Output("moe.top1.unnormalized", h.Op(OpKind.MoeCombine, [router, .. experts], ("top_k", 1L), ("normalize", false)));
        h.Output("moe.top3.unnormalized", h.Op(OpKind.MoeCombine, [router, .. experts], ("top_k", 3L), ("normalize", false)));
        return h;
    }

    public static Dictionary<string, HostTensor> Inputs(int batch, int seq, int kseq, int seed)
    {
        var maskBias = new float[seq * kseq];
        for (int i = 0; i < seq; i++)
            for (int j = 0; j < kseq; j++)
                maskBias[i * kseq + j] = i == 0 || j % 3 == 0 ? float.NegativeInfinity : 0.1f * j;
        return new Dictionary<string, HostTensor>(StringComparer.Ordinal)
        {
            ["x"] = Floats(seed, [batch, seq, 8]),
            ["x2"] = Floats(seed + 1, [batch, seq, 8]),
            ["xb"] = Floats(seed + 2, [batch, 1, 8]),
            ["ids"] = HostTensor.FromInts([batch, seq], Enumerable.Range(0, batch * seq).Select(i => (long)((i * 7 + seed) % 11)).ToArray()),
            ["q"] = Floats(seed + 3, [batch, seq, 4, 8]),
            ["k"] = Floats(seed + 4, [batch, kseq, 2, 8], 2),
            ["v"] = Floats(seed + 5, [batch, kseq, 2, 6]),
            ["abias"] = Floats(seed + 6, [batch, 4, seq, kseq], 3),
            ["maskbias"] = HostTensor.FromFloats([seq, kseq], maskBias),
        };
    }
}

/// <summary>The kernel graph compiled once for every test in <see cref="CpuKernelTests"/>, and each run's results, computed once.</summary>
public sealed class KernelGraphFixture
{
    private readonly ConcurrentDictionary<string, Lazy<(IReadOnlyDictionary<string, RefTensor>, IReadOnlyDictionary<string, HostTensor>)>> _runs = new();

    internal CpuHarness Harness { get; } = KernelGraph.Build();

    internal ICompiledModel Model { get; }

    public KernelGraphFixture() => Model = Harness.Compile();

    internal (IReadOnlyDictionary<string, RefTensor> Reference, IReadOnlyDictionary<string, HostTensor> Cpu) Results(int batch, int seq, int kseq, long? prefix) =>
        _runs.GetOrAdd($"{batch},{seq},{kseq},{prefix}", _ => new(() =>
        {
            var inputs = KernelGraph.Inputs(batch, seq, kseq, seed: batch * 100 + seq * 10 + kseq);
            return (Harness.Reference(inputs, prefix), Model.Run(inputs, prefix));
        })).Value;
}

public sealed class CpuKernelTests(KernelGraphFixture fixture) : IClassFixture<KernelGraphFixture>
{
    public static TheoryData<string> Outputs() => new(KernelGraph.Build().Graph.Outputs.Select(o => o.Key));

    /// <summary>(batch, seq, kseq, cachedPrefixLength): more keys than queries, fewer, a single query, and a cached prefix.</summary>
    private static readonly (int, int, int, long?)[] Shapes = [(2, 5, 7, null), (1, 4, 3, null), (2, 1, 6, null), (1, 6, 6, 4), (1, 6, 6, null)];

    [Theory]
    [MemberData(nameof(Outputs))]
    public void MatchesInterpreter(string output)
    {
        foreach (var (batch, seq, kseq, prefix) in Shapes)
        {
            var (reference, cpu) = fixture.Results(batch, seq, kseq, prefix);
            double difference = CpuHarness.Difference(reference[output], cpu[output]);
            Assert.True(difference <= 1e-5,
                $"{output} at batch={batch} seq={seq} kseq={kseq} prefix={prefix}: relative difference {difference:E3} (reference {reference[output]}, cpu {cpu[output]})");
        }
    }

    [Fact]
    public void WeightViewsArePreparedAtLoadTime()
    {
        var generated = Backends.Cpu.CSharpEmitter.Emit(fixture.Harness.Graph);
        Assert.True(generated.PreparedAtLoad >= 3, $"{generated.PreparedAtLoad} nodes prepared at load");
        Assert.Contains("in place", generated.Source);
    }
}
