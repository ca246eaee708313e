namespace ModelCompiler.Tests.Variants;

/// <summary>
/// examples/variants/xpos.arch against xPos written out (Sun et al. 2022, §3.2): RoPE on interleaved pairs, then
/// q_n scaled by ζ_i^(n/γ) and k_m by ζ_i^(−m/γ), ζ_i = (2i/d + 0.4)/1.4, d = head_dim.
/// </summary>
public sealed class XposTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, HeadDim = Dim / Heads, Layers = 2, Ffn = 64, Batch = 2, Seq = 7;

    /// <summary>
    /// The rotated and scaled head vector at position n: pair i = (2i, 2i+1) is rotated by n·10000^(−2i/d) and
    /// multiplied by ζ_i^(exponent(n)/γ) (exponent(n) = n for queries, −n for keys in the paper).
    /// </summary>
    private static double[] Xpos(double[] x, int offset, int n, double scaleExponent, double gamma)
    {
        var y = (double[])x.Clone();
        for (int i = 0; i < HeadDim / 2; i++)
        {
            double angle = n * Math.Pow(10000, -2.0 * i / HeadDim);
            double zeta = (2.0 * i / HeadDim + 0.4) / 1.4;
            double s = Math.Pow(zeta, scaleExponent / gamma);
            double a = x[offset + 2 * i], b = x[offset + 2 * i + 1];
            y[offset + 2 * i] = (a * Math.Cos(angle) - b * Math.Sin(angle)) * s;
            y[offset + 2 * i + 1] = (b * Math.Cos(angle) + a * Math.Sin(angle)) * s;
        }
        return y;
    }

    /// <summary>qScale(n, seq) and kScale(m, seq) give the exponents of ζ for a query at n and a key at m.</summary>
    private static double[] Reference(Weights w, long[][] ids, double gamma, Func<int, int, double> qScale, Func<int, int, double> kScale)
    {
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Embed(w["decoder.embed_tokens.weight", Vocab * Dim], seq, Dim);
            int len = seq.Length;
            for (int l = 0; l < Layers; l++)
            {
                var layer = $"decoder.layers.{l}";
                var h = Naive.LayerNorm(w, $"{layer}.self_attn_layer_norm", x);
                double[][] P(string n, double[][] input) => Naive.Linear(input, w[$"{layer}.self_attn.{n}.weight", Dim * Dim], w[$"{layer}.self_attn.{n}.bias", Dim]);
                var q = P("q_proj", h);
                var k = P("k_proj", h);
                var v = P("v_proj", h);
                for (int n = 0; n < len; n++)
                    for (int hh = 0; hh < Heads; hh++)
                    {
                        q[n] = Xpos(q[n], hh * HeadDim, n, qScale(n, len), gamma);
                        k[n] = Xpos(k[n], hh * HeadDim, n, kScale(n, len), gamma);
                    }
                var o = Naive.Attend(Heads, HeadDim, v, (hh, i, j) => Naive.Dot(q[i], hh * HeadDim, k[j], hh * HeadDim, HeadDim) / Math.Sqrt(HeadDim), (i, j) => j <= i);
                x = Naive.Add(x, P("o_proj", o));
                x = Naive.Add(x, Naive.Mlp(w, $"{layer}.ffn", Naive.LayerNorm(w, $"{layer}.final_layer_norm", x), Ffn, Naive.GeluTanh));
            }
            return Naive.LayerNorm(w, "decoder.layer_norm", x);
        });
        return Naive.Logits(hidden, w["decoder.output_projection.weight", Vocab * Dim]);
    }

    [Theory]
    [InlineData(512.0)]
    [InlineData(4.0)]
    public void LogitsMatchThePaperFormula(double gamma)
    {
        var m = VariantModel.Load("xpos.arch", ("scale_base", gamma.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, gamma, (n, _) => n, (mm, _) => -mm);
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
        // torchscale centres the positions in the scale (min_pos = −⌈len/2⌉); the shift cancels in q·k.
        Compare.Close(Reference(m.W, ids, gamma, (n, len) => n - (len + 1) / 2, (mm, len) => -(mm - (len + 1) / 2)), actual);
    }

    [Theory]
    [InlineData(4.0, 1e-2)]
    [InlineData(512.0, 1e-3)] // at the paper's γ the scale is within a few percent of 1 over 7 positions
    public void RopeAloneOrUnsignedScalingGiveDifferentLogits(double gamma, double atLeast)
    {
        var m = VariantModel.Load("xpos.arch", ("scale_base", gamma.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        Compare.Close(Reference(m.W, ids, gamma, (n, _) => n, (mm, _) => -mm), actual);
        Compare.Differs(actual, Reference(m.W, ids, gamma, (_, _) => 0, (_, _) => 0), atLeast);     // plain RoPE
        Compare.Differs(actual, Reference(m.W, ids, gamma, (n, _) => n, (mm, _) => mm), atLeast);   // keys upscaled too
        Compare.Differs(actual, Reference(m.W, ids, gamma, (n, _) => -n, (mm, _) => mm), atLeast);  // signs swapped: growth, not decay
    }
}
