using ModelCompiler.Frontend;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.IR;

/// <summary>
/// Typing rules reject ill-typed nodes as they are built (so a bad node never enters a graph), and
/// the verifier rejects graphs whose structure a pass broke.
/// </summary>
public sealed class VerifierTests
{
    private static readonly Dim B = Dim.Sym("batch"), S = Dim.Sym("seq");

    private static TensorType F(params Dim[] shape) => new(DType.F32, shape);

    private static Attrs A(params (string Name, object Value)[] attrs) => attrs.Aggregate(Attrs.Empty, (a, kv) => a.With(kv.Name, kv.Value));

    private static string Rejects(OpKind op, TensorType[] ins, Attrs? attrs = null, TensorType? declared = null) =>
        Assert.Throws<ShapeError>(() => ShapeInference.Infer(op, ins, attrs ?? Attrs.Empty, declared)).Message;

    // ---------------------------------------------------------------- good graphs

    [Fact]
    public void AcceptsAWellFormedGraph()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", F(B, S, 8));
        var w = b.Weight("w", F(16, 8));
        var bias = b.Weight("b", F(16));
        var h = b.Linear(x, w, bias);
        var y = b.Binary(OpKind.Add, b.Unary(OpKind.Silu, h), b.Const(1.0));
        b.Graph.SetOutput("y", b.Reshape(y, B, S, 4, 4));
        Assert.Empty(Verifier.Check(b.Graph));
        Verifier.Verify(b.Graph);
    }

    [Theory]
    [InlineData("llama.arch", "n_layers=2 dim=32 n_heads=4 n_kv_heads=2 ffn_dim=48 vocab=64")]
    [InlineData("gpt2.arch", "n_layers=2 dim=32 n_heads=4 vocab=64 max_positions=16")]
    public void AcceptsTheExamples(string file, string sets)
    {
        var g = ModelFrontend.Load(Path.Combine(AppContext.BaseDirectory, "examples", file), null,
            sets.Split(' ').Select(s => s.Split('=')).ToDictionary(p => p[0], p => p[1])).Graph;
        Assert.Empty(Verifier.Check(g));
    }

    // ---------------------------------------------------------------- typing rules

    [Fact]
    public void LinearRejectsMismatchedWeightAndBias()
    {
        Assert.Equal("linear: input f32[batch,seq,8] has last dimension 8 but weight f32[16,9] expects 9",
            Rejects(OpKind.Linear, [F(B, S, 8), F(16, 9)]));
        Assert.Equal("linear: bias f32[8] does not match weight's 16 outputs", Rejects(OpKind.Linear, [F(B, 8), F(16, 8), F(8)]));
        Assert.Equal("linear weight must be [out, in], got f32[2,16,8]", Rejects(OpKind.Linear, [F(B, 8), F(2, 16, 8)]));
        Assert.Contains("linear needs a floating-point tensor", Rejects(OpKind.Linear, [new TensorType(DType.I64, B, 8), F(16, 8)]));
        Assert.Contains("got 1 inputs", Rejects(OpKind.Linear, [F(B, 8)]));
    }

    [Fact]
    public void MatMulRejectsInnerDimensionsAndBatchMismatch()
    {
        Assert.Equal("matmul: f32[2,3,4] @ f32[2,5,6]: inner dimensions 4 and 5 differ", Rejects(OpKind.MatMul, [F(2, 3, 4), F(2, 5, 6)]));
        Assert.Contains("matmul needs rank >= 2 operands", Rejects(OpKind.MatMul, [F(4), F(4, 2)]));
        Assert.Contains("do not broadcast", Rejects(OpKind.MatMul, [F(2, 3, 4), F(3, 4, 6)]));
        Assert.Contains("element types differ", Rejects(OpKind.MatMul, [F(3, 4), new TensorType(DType.F16, 4, 6)]));
        Assert.Equal("f32[5,2,3,6]", ShapeInference.Infer(OpKind.MatMul, [F(5, 1, 3, 4), F(2, 4, 6)], Attrs.Empty).ToString());
    }

    [Fact]
    public void AttentionRejectsInconsistentOperands()
    {
        var q = F(B, S, 8, 16);
        var kv = F(B, S, 2, 16);
        Assert.Contains("attention expects [batch, seq, heads, head_dim] operands, got f32[batch,seq,128]", Rejects(OpKind.Attention, [F(B, S, 128), kv, kv]));
        Assert.Equal("attention: query head_dim 16 differs from key head_dim 8", Rejects(OpKind.Attention, [q, F(B, S, 2, 8), kv]));
        Assert.Equal("attention: 8 query heads are not a multiple of 3 key/value heads", Rejects(OpKind.Attention, [q, F(B, S, 3, 16), F(B, S, 3, 16)]));
        Assert.Contains("keys f32[batch,seq,2,16] and values f32[batch,7,2,16] differ in length or heads", Rejects(OpKind.Attention, [q, kv, F(B, 7, 2, 16)]));
        Assert.Equal("attention: shapes [batch,8,seq,seq] and [1,8,4,4] do not broadcast (axis 2: seq vs 4)", Rejects(OpKind.Attention, [q, kv, kv, F(1, 8, 4, 4)]));
        Assert.Equal("attention: bias f32[3,1,8,1,1] does not broadcast to [batch, heads, seq, keys] = [batch,8,seq,seq]", Rejects(OpKind.Attention, [q, kv, kv, F(3, 1, 8, 1, 1)]));
        Assert.Contains("unknown mask 'sliding'", Rejects(OpKind.Attention, [q, kv, kv], A(("mask", "sliding"))));
        Assert.Equal("f32[batch,seq,8,16]", ShapeInference.Infer(OpKind.Attention, [q, kv, kv, F(1, 8, 1, 1)], A(("mask", "causal"))).ToString());
    }

    [Fact]
    public void ElementwiseOpsRejectShapesThatDoNotBroadcast()
    {
        Assert.Equal("add: shapes [2,3] and [4,3] do not broadcast (axis 0: 2 vs 4)", Rejects(OpKind.Add, [F(2, 3), F(4, 3)]));
        Assert.Equal("mul: shapes [batch,3] and [5,3] do not broadcast (axis 0: batch vs 5)", Rejects(OpKind.Mul, [F(B, 3), F(5, 3)]));
        Assert.Contains("sub: shapes [batch] and [seq] do not broadcast", Rejects(OpKind.Sub, [F(B), F(S)]));
        Assert.Contains("element types differ", Rejects(OpKind.Add, [F(3), new TensorType(DType.I64, 3)]));
        Assert.Equal("f32[batch,4,3]", ShapeInference.Infer(OpKind.Add, [F(B, 1, 3), F(4, 1)], Attrs.Empty).ToString());
    }

    [Fact]
    public void ReshapeRejectsAChangeInElementCountOrDType()
    {
        Assert.Equal("reshape: cannot view f32[batch,6] as [batch,4]: element counts differ", Rejects(OpKind.Reshape, [F(B, 6)], declared: F(B, 4)));
        Assert.Contains("element counts differ", Rejects(OpKind.Reshape, [F(B, 6)], declared: F(S, 6)));
        Assert.Equal("reshape cannot change the dtype", Rejects(OpKind.Reshape, [F(6)], declared: new TensorType(DType.F16, 2, 3)));
        Assert.Equal("reshape needs a target shape", Rejects(OpKind.Reshape, [F(6)]));
        Assert.Equal("f32[batch,2,3]", ShapeInference.Infer(OpKind.Reshape, [F(B, 6)], Attrs.Empty, F(B, 2, 3)).ToString());
    }

    [Fact]
    public void ConcatRejectsMismatchedOperands()
    {
        var axis1 = A(("axis", 1));
        Assert.Equal("concat: ranks differ (f32[2,3] and f32[2,3,1])", Rejects(OpKind.Concat, [F(2, 3), F(2, 3, 1)], axis1));
        Assert.Equal("concat along axis 1: f32[2,3] and f32[4,5] differ on axis 0", Rejects(OpKind.Concat, [F(2, 3), F(4, 5)], axis1));
        Assert.Equal("concat along symbolic axis 1 of f32[2,seq]", Rejects(OpKind.Concat, [F(2, S), F(2, 3)], axis1));
        Assert.Equal("concat: axis 2 out of range for f32[2,3]", Rejects(OpKind.Concat, [F(2, 3)], A(("axis", 2))));
        Assert.Equal("f32[2,8]", ShapeInference.Infer(OpKind.Concat, [F(2, 3), F(2, 5)], A(("axis", -1))).ToString());
    }

    [Fact]
    public void SliceAndTransposeRejectOutOfRangeArguments()
    {
        Assert.Equal("slice [2:9] out of range for axis 1 of f32[4,8]", Rejects(OpKind.Slice, [F(4, 8)], A(("axis", 1), ("start", 2), ("end", 9))));
        Assert.Contains("slice [5:3] out of range", Rejects(OpKind.Slice, [F(4, 8)], A(("axis", 1), ("start", 5), ("end", 3))));
        Assert.Equal("transpose: [0,0] is not a permutation of the 2 axes of f32[4,8]", Rejects(OpKind.Transpose, [F(4, 8)], A(("perm", new long[] { 0, 0 }))));
    }

    [Fact]
    public void MoeCombineRejectsRouterExpertMismatch()
    {
        var y = F(B, S, 8);
        Assert.Equal("moe_combine: router logits f32[batch,seq,4] score 4 experts but 3 expert outputs were given",
            Rejects(OpKind.MoeCombine, [F(B, S, 4), y, y, y], A(("top_k", 2))));
        Assert.Equal("moe_combine: top_k 4 must be within 1..3", Rejects(OpKind.MoeCombine, [F(B, S, 3), y, y, y], A(("top_k", 4))));
        Assert.Equal("moe_combine: expert outputs differ in type (f32[batch,seq,8] and f32[batch,seq,9])",
            Rejects(OpKind.MoeCombine, [F(B, S, 2), y, F(B, S, 9)], A(("top_k", 1))));
        Assert.Contains("does not match router logits", Rejects(OpKind.MoeCombine, [F(B, 7, 2), y, y], A(("top_k", 1))));
    }

    [Fact]
    public void OtherRulesNameTheOpAndTheShapes()
    {
        Assert.Equal("embedding ids must be integers, got f32[batch,seq]", Rejects(OpKind.Embedding, [F(B, S), F(10, 4)]));
        Assert.Equal("rms_norm: parameter f32[5] does not match normalized dimension 4 of f32[batch,4]", Rejects(OpKind.RmsNorm, [F(B, 4), F(5)]));
        Assert.Equal("const is a scalar", Rejects(OpKind.Const, [], declared: F(2)));
        Assert.Equal("softmax: axis 3 out of range for f32[batch,4]", Rejects(OpKind.Softmax, [F(B, 4)], A(("axis", 3))));
        Assert.Equal("exp needs a floating-point tensor, got i64[4]", Rejects(OpKind.Exp, [new TensorType(DType.I64, 4)]));
    }

    [Fact]
    public void TheBuilderAddsNothingWhenARuleFails()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", F(B, 8));
        var w = b.Weight("w", F(16, 9));
        Assert.Throws<ShapeError>(() => b.Linear(x, w));
        Assert.Equal(2, b.Graph.Nodes.Count);
    }

    // ---------------------------------------------------------------- graph structure

    private static (Graph G, Node X, Node H, Node Y) Chain()
    {
        var b = new GraphBuilder(new Graph("t"));
        var x = b.Input("x", F(B, 4));
        var h = b.Unary(OpKind.Relu, x);
        var y = b.Unary(OpKind.Exp, h);
        b.Graph.SetOutput("y", y);
        return (b.Graph, x, h, y);
    }

    [Fact]
    public void RejectsAnOutputThatRefersToARemovedNode()
    {
        var (g, x, h, _) = Chain();
        g.RetainOnly(new HashSet<Node> { x, h });
        Assert.Equal(["output 'y' refers to %2, which is not in the graph"], Verifier.Check(g));
        Assert.Contains("output \"y\" = %?2", Printer.Print(g));
    }

    [Fact]
    public void RejectsAUseOfARemovedNode()
    {
        var (g, x, _, y) = Chain();
        g.RetainOnly(new HashSet<Node> { x, y });
        Assert.Equal(["%2 = exp: input %1 is not defined before it"], Verifier.Check(g));
    }

    [Fact]
    public void RejectsUseBeforeDefinition()
    {
        var (g, x, h, y) = Chain();
        g.Reorder([x, y, h]);
        Assert.Equal(["%2 = exp: input %1 is not defined before it"], Verifier.Check(g));
        var e = Assert.Throws<InvalidOperationException>(() => Verifier.Verify(g, "my-pass"));
        Assert.StartsWith("IR verification failed after my-pass:\n  %2 = exp: input %1 is not defined before it", e.Message);

        g.Reorder(GraphAnalysis.TopologicalOrder(g));   // the stable topological order repairs it
        Assert.Empty(Verifier.Check(g));
        Assert.Equal([x, h, y], g.Nodes);
    }

    [Fact]
    public void RejectsAGraphWithoutOutputs()
    {
        var b = new GraphBuilder(new Graph("t"));
        b.Input("x", F(4));
        Assert.Equal(["graph has no outputs"], Verifier.Check(b.Graph));
    }

    [Fact]
    public void ReorderNeedsAPermutation()
    {
        var (g, x, h, _) = Chain();
        Assert.Throws<InvalidOperationException>(() => g.Reorder([x, h]));
        Assert.Throws<InvalidOperationException>(() => g.Reorder([x, h, h]));
    }
}
