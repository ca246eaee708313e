namespace ModelCompiler.Tests.Variants;

/// <summary>
/// examples/variants/sinusoidal.arch against Vaswani et al. §3.5 written out: x = E[token] (·√d with
/// scale_embeddings) + PE[pos], PE[pos, 2i] = sin(pos/10000^(2i/d)), PE[pos, 2i+1] = cos(pos/10000^(2i/d)).
/// </summary>
public sealed class SinusoidalTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, Layers = 2, Ffn = 64, Batch = 2, Seq = 7;

    private static double PaperPe(int pos, int c) =>
        c % 2 == 0 ? Math.Sin(pos / Math.Pow(10000, (double)c / Dim)) : Math.Cos(pos / Math.Pow(10000, (double)(c - 1) / Dim));

    private static double[] Reference(Weights w, long[][] ids, bool scaleEmbeddings, Func<int, int, double> pe)
    {
        var embed = w["decoder.embed_tokens.weight", Vocab * Dim];
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Embed(embed, seq, Dim)
                .Select((e, pos) => Enumerable.Range(0, Dim).Select(c => e[c] * (scaleEmbeddings ? Math.Sqrt(Dim) : 1) + pe(pos, c)).ToArray())
                .ToArray();
            for (int l = 0; l < Layers; l++)
            {
                var layer = $"decoder.layers.{l}";
                x = Naive.LayerNorm(w, $"{layer}.self_attn_layer_norm", Naive.Add(x, Naive.MhAttention(w, $"{layer}.self_attn", x, Heads, (i, j) => j <= i)));
                x = Naive.LayerNorm(w, $"{layer}.ffn_layer_norm", Naive.Add(x, Naive.Mlp(w, $"{layer}.ffn", x, Ffn, Naive.Relu)));
            }
            return x;
        });
        return Naive.Logits(hidden, embed); // tied output projection
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LogitsMatchThePaperEncoding(bool scaleEmbeddings)
    {
        var m = VariantModel.Load("sinusoidal.arch", ("scale_embeddings", scaleEmbeddings ? "true" : "false"));
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, scaleEmbeddings, PaperPe);
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
    }

    [Fact]
    public void OtherEncodingsGiveDifferentLogits()
    {
        var m = VariantModel.Load("sinusoidal.arch");
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        Compare.Close(Reference(m.W, ids, false, PaperPe), actual);
        // sin in the first half, cos in the second (tensor2tensor's layout) instead of interleaved
        Compare.Differs(actual, Reference(m.W, ids, false, (pos, c) => c < Dim / 2
            ? Math.Sin(pos / Math.Pow(10000, 2.0 * c / Dim)) : Math.Cos(pos / Math.Pow(10000, 2.0 * (c - Dim / 2) / Dim))));
        // sin and cos swapped
        Compare.Differs(actual, Reference(m.W, ids, false, (pos, c) => c % 2 == 1
            ? Math.Sin(pos / Math.Pow(10000, (double)(c - 1) / Dim)) : Math.Cos(pos / Math.Pow(10000, (double)c / Dim))));
        // the embedding scaled by √d although scale_embeddings is off
        Compare.Differs(actual, Reference(m.W, ids, true, PaperPe));
    }
}
