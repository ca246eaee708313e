using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>The position schemes of the literature variants (examples/variants): xPos and Transformer-XL's relative terms.</summary>
internal static class PositionVariants
{
    /// <summary>
    /// xPos (Sun et al. 2022, "A Length-Extrapolatable Transformer"): for pair i of x[B, S, H, D] at position n,
    /// (a, b) → ((a·cos − b·sin)·s, (b·cos + a·sin)·s) with angle n·θ^(−2i/D) and s = ζ_i^(n/γ), or ζ_i^(−n/γ)
    /// when downscale (keys); ζ_i = (2i + 0.4·D)/(1.4·D), γ = scale_base. Pairs are (2i, 2i+1) when interleaved
    /// (torchscale's rotate_every_two), else (i, i + D/2). Positions enter the scale as they are: torchscale
    /// centres them (n − ⌈length/2⌉) for range, which cancels exactly in q·k because queries and keys share the centre.
    /// </summary>
    public static RefTensor Xpos(Node node, RefTensor x, RefTensor pos)
    {
        var a = node.Attrs;
        double theta = a.Float("theta", 10000.0), gamma = a.Float("scale_base", 512.0);
        bool downscale = a.Bool("downscale", false), interleaved = a.Bool("interleaved", true);
        long B = x.Shape[0], S = x.Shape[1], H = x.Shape[2], D = x.Shape[3];
        if (D % 2 != 0 || !(gamma > 0))
            throw new McException($"{Interpreter.Describe(node)}: xpos needs an even head_dim and scale_base > 0 (got {D}, {gamma})");
        var p = pos.I!;
        long half = D / 2;
        var cos = new double[S * half];
        var sin = new double[S * half];
        var scale = new double[S * half];
        for (long s = 0; s < S; s++)
            for (long i = 0; i < half; i++)
            {
                double angle = p[s] * Math.Pow(theta, -2.0 * i / D);
                double zeta = (2.0 * i + 0.4 * D) / (1.4 * D);
                cos[s * half + i] = Math.Cos(angle);
                sin[s * half + i] = Math.Sin(angle);
                scale[s * half + i] = Math.Pow(zeta, (downscale ? -p[s] : p[s]) / gamma);
            }

        var xs = x.F!;
        var y = new double[xs.Length];
        for (long b = 0; b < B; b++)
            for (long s = 0; s < S; s++)
                for (long h = 0; h < H; h++)
                {
                    long o = ((b * S + s) * H + h) * D;
                    for (long i = 0; i < half; i++)
                    {
                        long ia = interleaved ? o + 2 * i : o + i;
                        long ib = interleaved ? o + 2 * i + 1 : o + i + half;
                        double c = cos[s * half + i], sn = sin[s * half + i], k = scale[s * half + i];
                        y[ia] = (xs[ia] * c - xs[ib] * sn) * k;
                        y[ib] = (xs[ib] * c + xs[ia] * sn) * k;
                    }
                }
        return new RefTensor(node.Type.DType, x.Shape, y, null);
    }

    /// <summary>
    /// out[b, h, i, j] = Σ_d x[b, i, h, d] · table[qpos[i] − kpos[j], h, d]: row r of the table belongs to the
    /// distance r (query position minus key position). Pairs whose distance has no row (negative, or ≥ L) get 0;
    /// under a causal mask the negative ones are never seen.
    /// </summary>
    public static RefTensor RelativeScores(Node node, RefTensor x, RefTensor table, RefTensor qpos, RefTensor kpos)
    {
        long B = x.Shape[0], S = x.Shape[1], H = x.Shape[2], D = x.Shape[3], L = table.Shape[0];
        if (table.Shape[1] != H || table.Shape[2] != D || qpos.Shape[0] != S)
            throw new InvalidOperationException($"{Interpreter.Describe(node)}: table {table} or positions {qpos} do not match {x}");
        var q = qpos.I!;
        var k = kpos.I!;
        long T = k.Length;
        var xs = x.F!;
        var ts = table.F!;
        var output = new double[B * H * S * T];
        for (long b = 0; b < B; b++)
            for (long h = 0; h < H; h++)
                for (long i = 0; i < S; i++)
                    for (long j = 0; j < T; j++)
                    {
                        long distance = q[i] - k[j];
                        if (distance < 0 || distance >= L) continue;
                        long xo = ((b * S + i) * H + h) * D, to = (distance * H + h) * D;
                        double dot = 0;
                        for (long d = 0; d < D; d++) dot += xs[xo + d] * ts[to + d];
                        output[((b * H + h) * S + i) * T + j] = dot;
                    }
        return new RefTensor(node.Type.DType, [B, H, S, T], output, null);
    }
}
