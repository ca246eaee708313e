using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// An RMSNorm or LayerNorm whose every user is a linear moves into those linears as their prologue,
/// so the row is normalised inside the GEMM instead of written out and read back.
/// <code>
/// before: %h = rms_norm %x, %g {eps=1e-05}; %y = linear %h, %w
/// after:  %y = fused_linear %x, %w, %g {prologue="rms_norm", eps=1e-05, norm_inputs=1, ...}
/// </code>
/// Not fused when the normalised tensor has other users (a post-LN residual reads it): the norm
/// would then be computed twice.
/// </summary>
public sealed class FuseNormLinear : IPass
{
    public string Name => "fuse-norm-linear";

    public string Description => "normalisation feeding only linears becomes those GEMMs' prologue";

    public bool Run(Graph graph)
    {
        var users = GraphAnalysis.Users(graph);
        bool changed = false;
        foreach (var norm in graph.Nodes.Where(n => n.Op is OpKind.RmsNorm or OpKind.LayerNorm).ToList())
        {
            var consumers = users[norm];
            if (consumers.Count == 0 || graph.Outputs.Any(o => o.Value == norm)) continue;
            if (!consumers.All(u => FusedLinearParts.Of(u) is { Prologue: "none" } p && p.X == norm && p.Weight != norm && p.Bias != norm && p.Residual != norm))
                continue;
            foreach (var user in consumers)
            {
                var parts = FusedLinearParts.Of(user)!;
                (parts with
                {
                    X = norm.Input(0),
                    Prologue = norm.Op == OpKind.RmsNorm ? "rms_norm" : "layer_norm",
                    Eps = norm.Attrs.Float("eps"),
                    Offset = norm.Attrs.Float("offset", 0),
                    NormInputs = norm.Inputs.Skip(1).ToList(),
                }).Replace(graph, user);
            }
            changed = true;
        }
        if (changed) FusionSupport.Finish(graph);
        return changed;
    }
}
