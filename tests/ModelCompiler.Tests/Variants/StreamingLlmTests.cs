namespace ModelCompiler.Tests.Variants;

/// <summary>
/// examples/variants/streaming_llm.arch against StreamingLLM's visibility written out (one full-sequence forward,
/// ordinary rotary positions): the query at p sees key j iff j ≤ p and (j &lt; n_sinks or p − j ≤ recent).
/// </summary>
public sealed class StreamingLlmTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, HeadDim = Dim / Heads, Layers = 2, Ffn = 32, Batch = 2, Seq = 10;
    private const double Eps = 1e-5;

    /// <summary>LLaMA's rotary embedding (half-split pairs (i, i + d/2), angle n·10000^(−2i/d)) of one head.</summary>
    private static double[] Rope(double[] x, int offset, int n)
    {
        var y = (double[])x.Clone();
        for (int i = 0; i < HeadDim / 2; i++)
        {
            double angle = n * Math.Pow(10000, -2.0 * i / HeadDim);
            double a = x[offset + i], b = x[offset + i + HeadDim / 2];
            y[offset + i] = a * Math.Cos(angle) - b * Math.Sin(angle);
            y[offset + i + HeadDim / 2] = b * Math.Cos(angle) + a * Math.Sin(angle);
        }
        return y;
    }

    private static double[] Reference(Weights w, long[][] ids, Func<int, int, bool> visible)
    {
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Embed(w["model.embed_tokens.weight", Vocab * Dim], seq, Dim);
            for (int l = 0; l < Layers; l++)
            {
                var layer = $"model.layers.{l}";
                var h = x.Select(t => Naive.RmsNorm(t, w[$"{layer}.input_layernorm.weight", Dim], Eps)).ToArray();
                var q = Naive.Linear(h, w[$"{layer}.self_attn.q_proj.weight", Dim * Dim]);
                var k = Naive.Linear(h, w[$"{layer}.self_attn.k_proj.weight", Dim * Dim]);
                var v = Naive.Linear(h, w[$"{layer}.self_attn.v_proj.weight", Dim * Dim]);
                for (int n = 0; n < seq.Length; n++)
                    for (int hh = 0; hh < Heads; hh++)
                    {
                        q[n] = Rope(q[n], hh * HeadDim, n);
                        k[n] = Rope(k[n], hh * HeadDim, n);
                    }
                var o = Naive.Attend(Heads, HeadDim, v, (hh, i, j) => Naive.Dot(q[i], hh * HeadDim, k[j], hh * HeadDim, HeadDim) / Math.Sqrt(HeadDim), visible);
                x = Naive.Add(x, Naive.Linear(o, w[$"{layer}.self_attn.o_proj.weight", Dim * Dim]));
                h = x.Select(t => Naive.RmsNorm(t, w[$"{layer}.post_attention_layernorm.weight", Dim], Eps)).ToArray();
                var mlp = h.Select(t =>
                {
                    var gate = Naive.Map(Naive.Linear(t, w[$"{layer}.mlp.gate_proj.weight", Ffn * Dim]), Naive.Silu);
                    var up = Naive.Linear(t, w[$"{layer}.mlp.up_proj.weight", Ffn * Dim]);
                    return Naive.Linear(gate.Select((g, c) => g * up[c]).ToArray(), w[$"{layer}.mlp.down_proj.weight", Dim * Ffn]);
                }).ToArray();
                x = Naive.Add(x, mlp);
            }
            return x.Select(t => Naive.RmsNorm(t, w["model.norm.weight", Dim], Eps)).ToArray();
        });
        return Naive.Logits(hidden, w["lm_head.weight", Vocab * Dim]);
    }

    private static Func<int, int, bool> SinksAndRecent(int sinks, int recent) => (p, j) => j <= p && (j < sinks || p - j <= recent);

    [Theory]
    [InlineData(2, 3)]  // the file's defaults
    [InlineData(4, 2)]  // the paper's four sinks
    [InlineData(0, 2)]  // a plain sliding window
    [InlineData(1, 20)] // a window past the sequence: causal
    public void LogitsMatchSinksPlusWindow(int sinks, int recent)
    {
        var m = VariantModel.Load("streaming_llm.arch", ("n_sinks", sinks.ToString()), ("recent", recent.ToString()));
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, SinksAndRecent(sinks, recent));
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
    }

    [Fact]
    public void NoSinksOrAShorterWindowGiveDifferentLogits()
    {
        var m = VariantModel.Load("streaming_llm.arch"); // 2 sinks, 3 recent
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        Compare.Close(Reference(m.W, ids, SinksAndRecent(2, 3)), actual);
        Compare.Differs(actual, Reference(m.W, ids, SinksAndRecent(0, 3)));                   // sliding window without sinks
        Compare.Differs(actual, Reference(m.W, ids, (p, j) => j <= p && (j < 2 || p - j < 3))); // the query's own slot taken from the window
        Compare.Differs(actual, Reference(m.W, ids, (p, j) => j <= p));                        // plain causal (nothing evicted)
    }
}
