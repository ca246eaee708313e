using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends;

/// <summary>
/// Greedy decoding that matches Hugging Face's <c>generate(do_sample=False, min_new_tokens=N)</c>:
/// exactly N argmax tokens, with the EOS ids masked out of every choice (so it never stops early).
/// Without a KV cache each step re-runs the whole prefix; the CPU backend's cached decode is checked against this.
/// </summary>
public static class GreedyDecoder
{
    /// <summary>Runs a forward over a [1, len] id sequence and returns the logits of the last position.</summary>
    public delegate float[] LastLogits(long[] ids);

    /// <summary>Extends <paramref name="prompt"/> by <paramref name="steps"/> tokens.</summary>
    public static long[] Generate(long[] prompt, int steps, IReadOnlyCollection<long> eosIds, LastLogits forward, Action<int>? progress = null)
    {
        var ids = new List<long>(prompt);
        for (int step = 0; step < steps; step++)
        {
            var logits = forward(ids.ToArray());
            ids.Add(ArgMax(logits, eosIds));
            progress?.Invoke(step + 1);
        }
        return ids.ToArray();
    }

    /// <summary>The first index of the largest logit, skipping the masked ids (PyTorch's argmax also returns the first maximum).</summary>
    public static long ArgMax(ReadOnlySpan<float> logits, IReadOnlyCollection<long> masked)
    {
        long best = -1;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
        {
            if (masked.Contains(i)) continue;
            if (best < 0 || logits[i] > bestValue || (float.IsNaN(bestValue) && !float.IsNaN(logits[i]))) { best = i; bestValue = logits[i]; }
        }
        if (best < 0) throw new McException("greedy decoding: every token id is masked");
        return best;
    }

    /// <summary>The EOS ids a graph was elaborated with (hyperparameter <c>eos_token_id</c>, an int or a list).</summary>
    public static IReadOnlyCollection<long> EosIds(Graph graph) =>
        graph.Hyperparameters.TryGetValue("eos_token_id", out var v) ? v switch
        {
            long l => [l],
            long[] a => a,
            _ => [],
        } : [];
}
