namespace ModelCompiler.Tests.Variants;

/// <summary>examples/variants/prefix_lm.arch against the prefix-LM mask written out: query i sees key j iff j &lt; p or j ≤ i.</summary>
public sealed class PrefixLmTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, Layers = 2, Ffn = 64, MaxPositions = 64, Batch = 2, Seq = 7;

    /// <summary>The pre-LN decoder of prefix_lm.arch, with the attention mask <paramref name="visible"/>(i, j).</summary>
    private static double[] Reference(Weights w, long[][] ids, Func<int, int, bool> visible)
    {
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Add(Naive.Embed(w["transformer.wte.weight", Vocab * Dim], seq, Dim),
                              Naive.Embed(w["transformer.wpe.weight", MaxPositions * Dim], Enumerable.Range(0, seq.Length).Select(p => (long)p).ToArray(), Dim));
            for (int l = 0; l < Layers; l++)
            {
                var layer = $"transformer.h.{l}";
                x = Naive.Add(x, Naive.MhAttention(w, $"{layer}.attn", Naive.LayerNorm(w, $"{layer}.attn_norm", x), Heads, visible));
                x = Naive.Add(x, Naive.Mlp(w, $"{layer}.mlp", Naive.LayerNorm(w, $"{layer}.mlp_norm", x), Ffn, Naive.GeluTanh));
            }
            return Naive.LayerNorm(w, "transformer.final_norm", x);
        });
        return Naive.Logits(hidden, w["lm_head.weight", Vocab * Dim]);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]   // no prefix: causal
    [InlineData(7)]   // the whole sequence: bidirectional
    [InlineData(10)]  // longer than the sequence
    public void LogitsMatchThePrefixLmFormula(int prefixLen)
    {
        var m = VariantModel.Load("prefix_lm.arch", ("prefix_len", prefixLen.ToString()));
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, (i, j) => j < prefixLen || j <= i);
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
    }

    [Fact]
    public void CausalOrBidirectionalMasksGiveDifferentLogits()
    {
        var m = VariantModel.Load("prefix_lm.arch"); // prefix_len = 3
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        Compare.Close(Reference(m.W, ids, (i, j) => j < 3 || j <= i), actual);
        Compare.Differs(actual, Reference(m.W, ids, (i, j) => j <= i));          // causal instead of prefix
        Compare.Differs(actual, Reference(m.W, ids, (i, j) => true));            // bidirectional everywhere
        Compare.Differs(actual, Reference(m.W, ids, (i, j) => j < 2 || j <= i)); // prefix off by one
    }
}
