namespace ModelCompiler.Tests.Variants;

/// <summary>
/// examples/variants/deepnorm.arch against DeepNorm written out (Wang et al. 2022): every sub-layer is
/// x ← LN(α·x + G(x)), α = (2N)^(1/4) for an N-layer decoder-only model.
/// </summary>
public sealed class DeepNormTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, Ffn = 64, MaxPositions = 64, Batch = 2, Seq = 6;

    private static double[] Reference(Weights w, long[][] ids, int layers, double alpha)
    {
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Add(Naive.Embed(w["decoder.embed_tokens.weight", Vocab * Dim], seq, Dim),
                              Naive.Embed(w["decoder.embed_positions.weight", MaxPositions * Dim], Enumerable.Range(0, seq.Length).Select(p => (long)p).ToArray(), Dim));
            for (int l = 0; l < layers; l++)
            {
                var layer = $"decoder.layers.{l}";
                var attn = Naive.MhAttention(w, $"{layer}.self_attn", x, Heads, (i, j) => j <= i);
                x = Naive.LayerNorm(w, $"{layer}.self_attn_layer_norm", x.Select((t, s) => Naive.Add(Naive.Scale(t, alpha), attn[s])).ToArray());
                var ffn = Naive.Mlp(w, $"{layer}.mlp", x, Ffn, Naive.GeluTanh);
                x = Naive.LayerNorm(w, $"{layer}.final_layer_norm", x.Select((t, s) => Naive.Add(Naive.Scale(t, alpha), ffn[s])).ToArray());
            }
            return x;
        });
        return Naive.Logits(hidden, w["decoder.output_projection.weight", Vocab * Dim]);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void LogitsMatchTheDeepNormFormula(int layers)
    {
        var m = VariantModel.Load("deepnorm.arch", ("n_layers", layers.ToString()));
        double alpha = Math.Pow(2.0 * layers, 0.25);
        Assert.True(m.Graph.TryGetHyperparameter<double>("alpha", out var bound));
        Assert.Equal(alpha, bound, 15);
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, layers, alpha);
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
    }

    [Fact]
    public void PlainPostLnOrTheBetaConstantGiveDifferentLogits()
    {
        var m = VariantModel.Load("deepnorm.arch"); // N = 2, α = 4^(1/4) = √2
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        Compare.Close(Reference(m.W, ids, 2, Math.Sqrt(2)), actual);
        Compare.Differs(actual, Reference(m.W, ids, 2, 1.0));                  // Post-LN: α = 1
        Compare.Differs(actual, Reference(m.W, ids, 2, Math.Pow(8.0 * 2, -0.25))); // β = (8N)^(-1/4) taken for α
        Compare.Differs(actual, Reference(m.W, ids, 2, Math.Pow(2.0 * 4, 0.25)));  // N counted as sub-layers (2N = 8)
    }

    [Fact]
    public void AlphaOneIsPlainPostLn()
    {
        var m = VariantModel.Load("deepnorm.arch", ("alpha", "1"));
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        Compare.Close(Reference(m.W, ids, 2, 1.0), m.Logits(ids, Vocab));
    }
}
