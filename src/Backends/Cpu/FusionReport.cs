using System.Text;
using ModelCompiler.IR;

namespace ModelCompiler.Backends.Cpu;

/// <summary>One kernel of the compiled forward: which IR ops it computes.</summary>
/// <param name="Node">the IR node's index (%n as in mc print-ir)</param>
/// <param name="Kernel">the kernel kind (as in mc bench's per-kernel table)</param>
/// <param name="Ops">the IR ops of the unfused graph this kernel computes, in order</param>
/// <param name="AtLoad">computed once when the weights load (depends only on weights and constants)</param>
public sealed record ReportedKernel(int Node, string Kernel, IReadOnlyList<string> Ops, string Detail, bool AtLoad);

/// <summary>A fusion pattern that matched an op's kind but did not fuse, and why.</summary>
public sealed record MissedFusion(string Pattern, int Node, string Op, string Reason);

/// <summary>
/// <c>mc compile --report</c>: reads the graph after the CPU pipeline and says which ops each kernel computes (a fused
/// linear's prologue and epilogue, concatenated projections, the tiled attention kernel) and, for each fusion pattern
/// whose anchor op is still on its own, why the pass left it (the passes' own conditions, checked again here).
/// </summary>
public sealed record FusionReport(IReadOnlyList<ReportedKernel> Kernels, IReadOnlyList<MissedFusion> Missed)
{
    /// <summary>Kernels that are the attention kernel, a tiled online-softmax pass over key blocks.</summary>
    public const string TiledAttention = "tiled attention (online softmax over key blocks of 64; no seq×seq scores)";

    private static readonly HashSet<OpKind> Activations = [OpKind.Relu, OpKind.Gelu, OpKind.GeluTanh, OpKind.Silu, OpKind.Sigmoid, OpKind.Tanh];

    public static FusionReport Build(Graph graph)
    {
        var index = new Dictionary<Node, int>();
        for (int i = 0; i < graph.Nodes.Count; i++) index[graph.Nodes[i]] = i;
        var users = GraphAnalysis.Users(graph);
        var outputs = graph.Outputs.Select(o => o.Value).ToHashSet();
        var atLoad = new HashSet<Node>();
        var kernels = new List<ReportedKernel>();
        var missed = new List<MissedFusion>();
        foreach (var n in graph.Nodes)
        {
            if (n.Op is OpKind.Weight or OpKind.Const
                || (n.Op != OpKind.Input && n.Inputs.Length > 0 && n.Inputs.All(atLoad.Contains)))
                atLoad.Add(n);
            if (n.Op is OpKind.Input or OpKind.Weight or OpKind.Const or OpKind.Reshape) continue;
            kernels.Add(new ReportedKernel(index[n], CSharpEmitter.KernelLabel(n), Ops(n), Detail(n), atLoad.Contains(n)));
        }

        string Users(Node n) => string.Join(", ", users[n].Select(u => $"{u.Op.Mnemonic()} %{index[u]}"));
        foreach (var n in graph.Nodes)
        {
            int at = index[n];
            // fuse-norm-linear: a norm still on its own
            if (n.Op is OpKind.RmsNorm or OpKind.LayerNorm && !atLoad.Contains(n))
            {
                string reason = outputs.Contains(n) ? "its result is a graph output"
                    : users[n].Count == 0 ? "its result is unused"
                    : users[n].FirstOrDefault(u => IsLinear(u) && u.Inputs.Skip(1).Contains(n)) is { } other
                        ? $"its result is also the residual, bias or weight of {other.Op.Mnemonic()} %{index[other]}: fusing would normalise twice"
                    : users[n].All(IsLinear) ? "a reading linear already has a prologue"
                    : $"its result is read by more than linears ({Users(n)}): fusing would normalise twice";
                missed.Add(new MissedFusion("fuse-norm-linear", at, n.Op.Mnemonic(), reason));
            }
            // fuse-linear-epilogue: a GEMM followed by an elementwise op it could have absorbed
            if (IsLinear(n) && users[n].Any(u => Activations.Contains(u.Op) || u.Op is OpKind.Add or OpKind.Mul or OpKind.Slice))
            {
                var next = users[n].First(u => Activations.Contains(u.Op) || u.Op is OpKind.Add or OpKind.Mul or OpKind.Slice);
                string? reason = outputs.Contains(n) ? "the GEMM's result is also a graph output"
                    : users[n].Count > 1 && !users[n].All(u => u.Op == OpKind.Slice) ? $"the GEMM's result has {users[n].Count} readers ({Users(n)})"
                    : users[n].All(u => u.Op == OpKind.Slice) && users[n].Count == 2 ? "the two slices are not an activation of one half times the other (no SwiGLU/GeGLU gate)"
                    : users[n].All(u => u.Op == OpKind.Slice) ? null   // concatenated projections sliced apart: not an epilogue
                    : next.Op == OpKind.Add && !next.Type.Equals(n.Type) ? $"the add broadcasts ({n.Type} + … → {next.Type}); a residual must have the GEMM's shape"
                    : next.Op == OpKind.Mul ? "a product with another tensor is not an epilogue the GEMM has"
                    : n.Op == OpKind.FusedLinear && (n.Attrs.Str("activation", "none") != "none" || n.Attrs.Bool("gate", false) || n.Attrs.Bool("residual", false))
                        ? $"the GEMM already has an epilogue; a second {next.Op.Mnemonic()} is not fused"
                    : "the pass found no rule for this reader";
                if (reason is not null) missed.Add(new MissedFusion("fuse-linear-epilogue", at, $"{n.Op.Mnemonic()} → {next.Op.Mnemonic()} %{index[next]}", reason));
            }
            // attention written out as matmul → softmax (the scores would be materialised)
            if (n.Op == OpKind.Softmax && n.Inputs[0].Op is OpKind.MatMul or OpKind.Mul or OpKind.Add or OpKind.Div)
                missed.Add(new MissedFusion("attention", at, "matmul → softmax",
                    "scores computed with matmul and softmax, not an attention op: the seq×seq matrix is materialised (write the model with attention(...))"));
        }
        return new FusionReport(kernels, missed);
    }

    private static bool IsLinear(Node n) => n.Op is OpKind.Linear or OpKind.FusedLinear;

    /// <summary>The unfused ops a node stands for: a fused linear's parts, in the order they apply.</summary>
    private static IReadOnlyList<string> Ops(Node n)
    {
        if (!IsLinear(n)) return [n.Op.Mnemonic()];
        var a = n.Attrs;
        var ops = new List<string>();
        if (n.Op == OpKind.FusedLinear && a.Str("prologue", "none") is var pro && pro != "none") ops.Add(pro);
        var w = n.Inputs[1];
        ops.Add(w.Op == OpKind.Concat ? $"linear ×{w.Inputs.Length} (concatenated weights)" : "linear");
        bool bias = n.Op == OpKind.Linear ? n.Inputs.Length > 2 : a.Bool("bias", false);
        if (bias) ops.Add("add (bias)");
        if (n.Op == OpKind.FusedLinear)
        {
            if (a.Bool("gate", false)) ops.AddRange(["slice ×2", a.Str("activation", "none"), "mul (gate)"]);
            else if (a.Str("activation", "none") is var act && act != "none") ops.Add(act);
            if (a.Bool("residual", false)) ops.Add("add (residual)");
        }
        return ops;
    }

    private static string Detail(Node n) => n.Op switch
    {
        OpKind.Attention => $"{TiledAttention}; {n.Inputs[0].Type[2]} query heads / {n.Inputs[1].Type[2]} kv heads, mask {n.Attrs.Str("mask", "none")}",
        OpKind.Linear or OpKind.FusedLinear => $"blocked GEMM, N={n.Inputs[1].Type[0]}, K={n.Inputs[1].Type[-1]}",
        _ => "",
    };

    /// <summary>The report as text: one line per kernel, then the missed fusions.</summary>
    public string Format()
    {
        var sb = new StringBuilder();
        int run = Kernels.Count(k => !k.AtLoad);
        sb.Append($"kernels ({run} per forward, {Kernels.Count - run} at load):\n");
        foreach (var k in Kernels)
            sb.Append($"  %{k.Node,-5} {k.Kernel,-44} <- {string.Join(" + ", k.Ops)}{(k.Detail.Length > 0 ? "  [" + k.Detail + "]" : "")}{(k.AtLoad ? "  (at load)" : "")}\n");
        sb.Append(Missed.Count == 0 ? "missed fusions: none\n" : $"missed fusions ({Missed.Count}):\n");
        foreach (var m in Missed)
            sb.Append($"  {m.Pattern}: %{m.Node} {m.Op}: {m.Reason}\n");
        return sb.ToString();
    }
}
