namespace ModelCompiler.Tests.Variants;

/// <summary>examples/variants/sandwich_ln.arch against CogView's Sandwich-LN written out: x ← x + LN_post(f(LN_pre(x))).</summary>
public sealed class SandwichLnTests
{
    private const int Vocab = 32, Dim = 16, Heads = 2, Layers = 2, Ffn = 64, MaxPositions = 64, Batch = 2, Seq = 6;

    private enum Residual { Sandwich, PreLn, PostLnOutside }

    private static double[] Reference(Weights w, long[][] ids, Residual kind)
    {
        double[][] Sublayer(double[][] x, string pre, string post, Func<double[][], double[][]> f) => kind switch
        {
            Residual.Sandwich => Naive.Add(x, Naive.LayerNorm(w, post, f(Naive.LayerNorm(w, pre, x)))),   // x + LN_post(f(LN_pre(x)))
            Residual.PreLn => Naive.Add(x, f(Naive.LayerNorm(w, pre, x))),                                  // x + f(LN_pre(x))
            _ => Naive.LayerNorm(w, post, Naive.Add(x, f(Naive.LayerNorm(w, pre, x)))),                     // LN_post(x + f(LN_pre(x)))
        };
        var hidden = ids.Select(seq =>
        {
            var x = Naive.Add(Naive.Embed(w["transformer.wte.weight", Vocab * Dim], seq, Dim),
                              Naive.Embed(w["transformer.wpe.weight", MaxPositions * Dim], Enumerable.Range(0, seq.Length).Select(p => (long)p).ToArray(), Dim));
            for (int l = 0; l < Layers; l++)
            {
                var layer = $"transformer.h.{l}";
                x = Sublayer(x, $"{layer}.attn_pre_norm", $"{layer}.attn_post_norm", h => Naive.MhAttention(w, $"{layer}.attn", h, Heads, (i, j) => j <= i));
                x = Sublayer(x, $"{layer}.mlp_pre_norm", $"{layer}.mlp_post_norm", h => Naive.Mlp(w, $"{layer}.mlp", h, Ffn, Naive.GeluTanh));
            }
            return Naive.LayerNorm(w, "transformer.final_norm", x);
        });
        return Naive.Logits(hidden, w["lm_head.weight", Vocab * Dim]);
    }

    [Fact]
    public void LogitsMatchTheSandwichLnFormula()
    {
        var m = VariantModel.Load("sandwich_ln.arch");
        var ids = VariantModel.Tokens(Batch, Seq, Vocab);
        var actual = m.Logits(ids, Vocab);
        var expected = Reference(m.W, ids, Residual.Sandwich);
        m.AssertSameWeightsUsed();
        Compare.Close(expected, actual);
        Compare.Differs(actual, Reference(m.W, ids, Residual.PreLn));          // the post-LN left out
        Compare.Differs(actual, Reference(m.W, ids, Residual.PostLnOutside));  // the post-LN around the residual sum
    }
}
