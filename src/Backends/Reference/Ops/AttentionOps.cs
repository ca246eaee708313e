using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>Scaled dot-product attention with masks, windows, sinks and GQA; and the mixture-of-experts combine.</summary>
internal static class AttentionOps
{
    /// <summary>
    /// q[B,S,Hq,D], k[B,T,Hkv,D], v[B,T,Hkv,Dv] (, bias broadcast to [B,Hq,S,T]) → [B,S,Hq,Dv]. Query i sits at
    /// absolute position p = i + (T − S); see the op table for which keys it may see.
    /// </summary>
    public static RefTensor Attention(Node node, RefTensor q, RefTensor k, RefTensor v, RefTensor? bias)
    {
        int B = (int)q.Shape[0], S = (int)q.Shape[1], Hq = (int)q.Shape[2], D = (int)q.Shape[3];
        int T = (int)k.Shape[1], Hkv = (int)k.Shape[2], Dv = (int)v.Shape[3];
        if (Hkv == 0 || Hq % Hkv != 0)
            throw new McException($"{Interpreter.Describe(node)}: {Hq} query heads are not a multiple of {Hkv} key/value heads");
        var a = node.Attrs;
        double scale = a.Float("scale", 1.0 / Math.Sqrt(D));
        string mask = a.Str("mask", "none");
        long window = a.Int("window", 0), sinks = a.Int("sinks", 0), prefix = a.Int("prefix", 0);
        if (mask is not ("none" or "causal" or "prefix"))
            throw new McException($"{Interpreter.Describe(node)}: unknown mask '{mask}'");
        int group = Hq / Hkv;
        var biasMap = bias is null ? null : Layout.BroadcastMap([B, Hq, S, T], bias.Shape);
        var qs = q.F!;
        var ks = k.F!;
        var vs = v.F!;
        var bs = bias?.F;
        var output = new double[(long)B * S * Hq * Dv];

        Parallel.For(0, B * Hq * S, row =>
        {
            int i = row % S, h = row / S % Hq, b = row / S / Hq;
            int kvh = h / group;
            long p = i + (T - S);
            var scores = new double[T];
            var visible = new bool[T];
            double max = double.NegativeInfinity;
            int qo = ((b * S + i) * Hq + h) * D;
            for (int j = 0; j < T; j++)
            {
                visible[j] = Visible(j, p, mask, window, sinks, prefix);
                if (!visible[j]) continue;
                int ko = ((b * T + j) * Hkv + kvh) * D;
                double dot = 0;
                for (int d = 0; d < D; d++) dot += qs[qo + d] * ks[ko + d];
                double s = scale * dot;
                if (bs is not null) s += bs[biasMap![((b * Hq + h) * S + i) * T + j]];
                scores[j] = s;
                max = Math.Max(max, s);
            }
            // No visible key (or all scores −∞ from the bias): the row stays zero rather than NaN.
            if (double.IsNegativeInfinity(max)) return;
            double sum = 0;
            for (int j = 0; j < T; j++)
            {
                if (!visible[j]) continue;
                scores[j] = Math.Exp(scores[j] - max);
                sum += scores[j];
            }
            var acc = new double[Dv];
            for (int j = 0; j < T; j++)
            {
                if (!visible[j]) continue;
                double prob = scores[j] / sum;
                int vo = ((b * T + j) * Hkv + kvh) * Dv;
                for (int d = 0; d < Dv; d++) acc[d] += prob * vs[vo + d];
            }
            Array.Copy(acc, 0, output, ((b * S + i) * Hq + h) * Dv, Dv);
        });
        return new RefTensor(node.Type.DType, [B, S, Hq, Dv], output, null);
    }

    /// <summary>Whether the query at absolute position p may attend to key j.</summary>
    public static bool Visible(long j, long p, string mask, long window, long sinks, long prefix)
    {
        bool byMask = mask switch
        {
            "causal" => j <= p,
            "prefix" => j < prefix || j <= p,
            _ => true,
        };
        if (!byMask) return false;
        if (window > 0 && p - j >= window && j >= sinks) return false;
        return true;
    }

    /// <summary>
    /// Per row: prob = softmax(router_logits); the top_k experts by prob (ties to the lower index) weighted by
    /// their probs (renormalized to sum 1 if normalize); out = Σ w_e·y_e over the chosen e in increasing order.
    /// </summary>
    public static RefTensor MoeCombine(Node node, RefTensor logits, RefTensor[] experts)
    {
        int e = experts.Length;
        long topK = node.Attrs.Int("top_k");
        bool normalize = node.Attrs.Bool("normalize", true);
        if (topK < 1 || topK > e) throw new McException($"{Interpreter.Describe(node)}: top_k {topK} must be within 1..{e}");
        int rows = Layout.Rows(logits.Shape);
        int d = (int)experts[0].Shape[^1];
        if (Layout.Rows(experts[0].Shape) != rows || logits.Shape[^1] != e)
            throw new InvalidOperationException($"{Interpreter.Describe(node)}: router logits {logits} do not match expert outputs {experts[0]}");
        var ls = logits.F!;
        var y = new double[(long)rows * d];
        for (int r = 0; r < rows; r++)
        {
            var prob = new double[e];
            double max = double.NegativeInfinity;
            for (int x = 0; x < e; x++) max = Math.Max(max, ls[r * e + x]);
            double sum = 0;
            for (int x = 0; x < e; x++) sum += prob[x] = Math.Exp(ls[r * e + x] - max);
            for (int x = 0; x < e; x++) prob[x] /= sum;

            var chosen = Enumerable.Range(0, e)
                .OrderByDescending(x => prob[x]).ThenBy(x => x) // stable; ties keep the lower index first
                .Take((int)topK)
                .Order()
                .ToArray();
            double total = normalize ? chosen.Sum(x => prob[x]) : 1.0;
            for (int c = 0; c < d; c++)
            {
                double acc = 0;
                foreach (var x in chosen) acc += prob[x] / total * experts[x].F![r * d + c];
                y[r * d + c] = acc;
            }
        }
        return new RefTensor(node.Type.DType, experts[0].Shape, y, null);
    }
}
