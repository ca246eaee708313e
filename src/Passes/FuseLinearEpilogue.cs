using ModelCompiler.IR;

namespace ModelCompiler.Passes;

/// <summary>
/// What follows a GEMM elementwise moves into it: an activation, a gate (act(y[:N/2]) · y[N/2:], the
/// SwiGLU/GeGLU of a concatenated gate/up projection), and a residual add.
/// <code>
/// before: %gu = linear %h, %w; %g = slice %gu {end=160}; %u = slice %gu {start=160}; %a = silu %g; %m = mul %a, %u
///         %d = linear %m, %wd; %x2 = add %x, %d
/// after:  %m = fused_linear %h, %w {activation="silu", gate=true}; %x2 = fused_linear %m, %wd, %x {residual=true}
/// </code>
/// Each step needs the GEMM's result to have no other user.
/// </summary>
public sealed class FuseLinearEpilogue : IPass
{
    private static readonly Dictionary<OpKind, string> Activations = new()
    {
        [OpKind.Relu] = "relu", [OpKind.Gelu] = "gelu", [OpKind.GeluTanh] = "gelu_tanh", [OpKind.Silu] = "silu",
        [OpKind.Sigmoid] = "sigmoid", [OpKind.Tanh] = "tanh",
    };

    public string Name => "fuse-linear-epilogue";

    public string Description => "activation, SwiGLU/GeGLU gate and residual add fused into the GEMM that produces them";

    public bool Run(Graph graph)
    {
        bool any = false;
        // Each rewrite changes the users map; iterate to a fixed point (activation, then gate, then residual),
        // sweeping the replaced nodes each time so they cannot match again.
        while (Step(graph))
        {
            any = true;
            new DeadCodeElimination().Run(graph);
        }
        if (any) FusionSupport.Finish(graph);
        return any;
    }

    private static bool Step(Graph graph)
    {
        var users = GraphAnalysis.Users(graph);
        var outputs = graph.Outputs.Select(o => o.Value).ToHashSet();
        bool Single(Node n, out Node user)
        {
            user = null!;
            if (users[n].Count != 1 || outputs.Contains(n) || users[n][0].Inputs.Count(i => i == n) != 1) return false;
            user = users[n][0];
            return true;
        }

        foreach (var gemm in graph.Nodes.ToList())
        {
            if (FusedLinearParts.Of(gemm) is not { } parts) continue;

            // activation
            if (!parts.HasEpilogue && Single(gemm, out var act) && Activations.TryGetValue(act.Op, out var name))
            {
                (parts with { Activation = name }).Replace(graph, act);
                return true;
            }

            // gate: exactly two slices, the halves of the last axis, one through an activation, multiplied
            if (!parts.HasEpilogue && users[gemm].Count == 2 && !outputs.Contains(gemm) && Halves(gemm, users[gemm]) is var (first, second)
                && Single(first, out var firstAct) && Activations.TryGetValue(firstAct.Op, out var gateAct)
                && Single(firstAct, out var mul) && mul.Op == OpKind.Mul && Single(second, out var mul2) && mul2 == mul)
            {
                (parts with { Activation = gateAct, Gate = true }).Replace(graph, mul);
                return true;
            }

            // residual: the GEMM's only user adds something of the result's own type
            if (parts.Residual is null && Single(gemm, out var add) && add.Op == OpKind.Add)
            {
                var other = add.Input(0) == gemm ? add.Input(1) : add.Input(0);
                if (other != gemm && other.Type.Equals(add.Type) && gemm.Type.Equals(add.Type))
                {
                    (parts with { Residual = other }).Replace(graph, add);
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>The two users when they are slices [0, N/2) and [N/2, N) of the last axis.</summary>
    private static (Node First, Node Second)? Halves(Node gemm, List<Node> slices)
    {
        long n = gemm.Type[-1].Size;
        int last = gemm.Type.Rank - 1;
        bool Is(Node s, long start, long end) => s.Op == OpKind.Slice && s.Input(0) == gemm
            && (s.Attrs.Int("axis") == last || s.Attrs.Int("axis") == -1) && s.Attrs.Int("start") == start && s.Attrs.Int("end") == end;
        var first = slices.FirstOrDefault(s => Is(s, 0, n / 2));
        var second = slices.FirstOrDefault(s => Is(s, n / 2, n));
        return n % 2 == 0 && first is not null && second is not null && first != second ? (first, second) : null;
    }
}
