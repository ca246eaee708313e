using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Passes;

/// <summary>
/// A paged forward computes logits only for the token rows the runtime asks for: generation needs each sequence's last
/// token, not the whole prompt (on a 512-token prefill of a 32000-word vocabulary the LM head is a fifth of the flops,
/// and 65 MB of logits nobody reads). Runs after <see cref="PagedKvCacheRewrite"/>; adds an input
/// <c>logits_rows : i64[1, logit_rows]</c> (indices into the step's tokens) and gathers those rows of the LM head's input.
/// The head is row-wise (a linear, or a fused linear whose prologue normalises each row), so it commutes with the gather.
/// <code>
/// before: %l = fused_linear %h, %w, %g {prologue="rms_norm"} : f32[1,seq,V]        output "logits" = %l
/// after:  %r = input "logits_rows" : i64[1,logit_rows]
///         %e = gather_rows %h, %r : f32[1,logit_rows,D]
///         %l = fused_linear %e, %w, %g {prologue="rms_norm"} : f32[1,logit_rows,V]
/// </code>
/// A head that reads anything computed per token besides its input (a residual) is left as it is.
/// </summary>
public sealed class PagedLogitRows : IPass
{
    public const string LogitsRows = "logits_rows";

    public string Name => "paged-logit-rows";

    public string Description => "compute the logits of the requested token rows only (logits_rows input: each sequence's last token)";

    public bool Run(Graph graph)
    {
        if (!graph.Inputs.Any(i => i.Attrs.Str("name") == PagedKvCacheRewrite.PositionIds)) return false;
        if (graph.Inputs.Any(i => i.Attrs.Str("name") == LogitsRows)) return false;
        if (!graph.Outputs.Any(o => o.Key == "logits")) return false;
        var head = graph.Output("logits");
        if (head.Op is not (OpKind.Linear or OpKind.FusedLinear) || !head.Inputs.Skip(1).All(WeightsOnly)) return false;
        var hidden = head.Input(0);
        if (hidden.Type.Rank < 2) return false;

        var builder = new GraphBuilder(graph) { CurrentName = head.Name, CurrentSpan = head.Span };
        var rows = builder.Input(LogitsRows, new TensorType(DType.I64, Dim.Of(1), Dim.Sym("logit_rows")));
        var picked = builder.Add(OpKind.GatherRows, [hidden, rows]);
        var newHead = builder.Add(head.Op, [picked, .. head.Inputs.Skip(1)], head.Attrs);
        graph.ReplaceAllUses(head, newHead);
        graph.RetainOnly(GraphAnalysis.Live(graph).Concat(graph.Inputs).ToHashSet());
        graph.Reorder(GraphAnalysis.TopologicalOrder(graph));
        return true;
    }

    /// <summary>Whether a value depends on weights and constants only (the same for every token).</summary>
    private static bool WeightsOnly(Node n) =>
        n.Op is OpKind.Weight or OpKind.Const || (n.Op != OpKind.Input && n.Inputs.Length > 0 && n.Inputs.All(WeightsOnly));
}
