namespace ModelCompiler.Tests.Variants;

/// <summary>
/// examples/variants/transformer_xl.arch against Dai et al. 2019 §3.3 written out, term by term:
/// A_ij = q_iᵀk_j (a) + q_iᵀW_R R_{i−j} (b) + uᵀk_j (c) + vᵀW_R R_{i−j} (d), scaled by 1/√head_dim, causal.
/// </summary>
public sealed class TransformerXlTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, HeadDim = Dim / Heads, Layers = 2, Ffn = 64, Batch = 2, Seq = 7;

    /// <summary>R_d: [sin(d·f_0) … sin(d·f_{D/2−1}) | cos(d·f_0) … cos(d·f_{D/2−1})], f_c = 10000^(−2c/D).</summary>
    private static double[] R(int d) =>
        Enumerable.Range(0, Dim).Select(c => c < Dim / 2
            ? Math.Sin(d * Math.Pow(10000, -2.0 * c / Dim))
            : Math.Cos(d * Math.Pow(10000, -2.0 * (c - Dim / 2) / Dim))).ToArray();

    private sealed record Terms(bool A = true, bool B = true, bool C = true, bool D = true, int DistanceSign = 1);

    private static double[] Reference(Weights w, long[][] ids, Terms terms)
    {
        var embed = w["word_emb.emb_layers.0.weight", Vocab * Dim];
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Embed(embed, seq, Dim).Select(e => Naive.Scale(e, Math.Sqrt(Dim))).ToArray();
            for (int l = 0; l < Layers; l++)
            {
                var at = $"layers.{l}.dec_attn";
                var qkv = w[$"{at}.qkv_net.weight", 3 * Dim * Dim];           // [3·dim, dim]: W_q, W_k, W_v stacked by rows
                var wq = qkv[..(Dim * Dim)];
                var wk = qkv[(Dim * Dim)..(2 * Dim * Dim)];
                var wv = qkv[(2 * Dim * Dim)..];
                var wr = w[$"{at}.r_net.weight", Dim * Dim];
                var u = w[$"{at}.r_w_bias", Heads * HeadDim];
                var vb = w[$"{at}.r_r_bias", Heads * HeadDim];
                var q = Naive.Linear(x, wq);
                var k = Naive.Linear(x, wk);
                var v = Naive.Linear(x, wv);
                double Score(int h, int i, int j)
                {
                    var r = Naive.Linear(R(terms.DistanceSign * (i - j)), wr); // W_R R_{i−j}
                    int o = h * HeadDim;
                    double a = Naive.Dot(q[i], o, k[j], o, HeadDim);
                    double b = Naive.Dot(q[i], o, r, o, HeadDim);
                    double c = Naive.Dot(u, o, k[j], o, HeadDim);
                    double d = Naive.Dot(vb, o, r, o, HeadDim);
                    return ((terms.A ? a : 0) + (terms.B ? b : 0) + (terms.C ? c : 0) + (terms.D ? d : 0)) / Math.Sqrt(HeadDim);
                }
                var attn = Naive.Linear(Naive.Attend(Heads, HeadDim, v, Score, (i, j) => j <= i), w[$"{at}.o_net.weight", Dim * Dim]);
                x = Naive.LayerNorm(w, $"{at}.layer_norm", Naive.Add(x, attn));
                var ff = $"layers.{l}.pos_ff";
                var core = x.Select(t => Naive.Linear(Naive.Map(Naive.Linear(t, w[$"{ff}.CoreNet.0.weight", Ffn * Dim], w[$"{ff}.CoreNet.0.bias", Ffn]), Naive.Relu),
                    w[$"{ff}.CoreNet.3.weight", Dim * Ffn], w[$"{ff}.CoreNet.3.bias", Dim])).ToArray();
                x = Naive.LayerNorm(w, $"{ff}.layer_norm", Naive.Add(x, core));
            }
            return x;
        });
        return Naive.Logits(hidden, embed, w["crit.out_layers.0.bias", Vocab]);
    }

    [Fact]
    public void LogitsMatchTheFourTermScore()
    {
        var m = VariantModel.Load("transformer_xl.arch");
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, new Terms());
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
    }

    [Fact]
    public void MissingTermsOrAFlippedDistanceGiveDifferentLogits()
    {
        var m = VariantModel.Load("transformer_xl.arch");
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        Compare.Close(Reference(m.W, ids, new Terms()), actual);
        Compare.Differs(actual, Reference(m.W, ids, new Terms(C: false, D: false)));  // no global biases u, v (Shaw-style)
        Compare.Differs(actual, Reference(m.W, ids, new Terms(C: false)));            // without u
        Compare.Differs(actual, Reference(m.W, ids, new Terms(D: false)));            // without v
        Compare.Differs(actual, Reference(m.W, ids, new Terms(B: false, D: false)));  // no positions at all
        Compare.Differs(actual, Reference(m.W, ids, new Terms(DistanceSign: -1)));    // R_{j−i} instead of R_{i−j}
    }
}
